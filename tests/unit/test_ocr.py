"""OCR and the cheap text test on real photos, with the real Tesseract and its model."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from semfs.ml.ocr import (
    Dictionary,
    TextReader,
    Word,
    clean_words,
    probably_has_text,
    read_text,
)

skimage_data = pytest.importorskip("skimage.data")
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skimage_data, name)())


def with_sign(background: Image.Image, text: str, size: int = 48) -> Image.Image:
    """`text` in dark letters on a light panel, drawn on a copy of a real photo."""
    image = background.convert("RGB").resize((800, 600))
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT, size)
    left, top, right, bottom = draw.textbbox((60, 200), text, font=font)
    draw.rectangle((left - 20, top - 20, right + 20, bottom + 20), fill=(235, 232, 220))
    draw.text((60, 200), text, font=font, fill=(30, 30, 40))
    return image


@pytest.fixture(scope="module")
def reader() -> TextReader:
    return TextReader()


def test_a_sign_over_a_photo_is_read(reader: TextReader) -> None:
    words = reader.read(with_sign(photo("coffee"), "INVOICE 2024")).split()
    assert "invoice" in words
    assert "2024" in words


def test_a_photographed_page_is_read() -> None:
    words = set(read_text(photo("page")).split())  # a photo of a printed page, unevenly lit
    assert {"segmentation", "markers", "coins", "background"} <= words


def test_photos_without_text_read_no_more_than_a_word_or_two(reader: TextReader) -> None:
    for name in ("chelsea", "coffee"):
        assert len(reader.read(photo(name)).split()) <= 2, name


def test_the_cheap_test_keeps_text_and_rejects_plain_photos() -> None:
    assert probably_has_text(with_sign(photo("chelsea"), "Garden centre open"))
    assert probably_has_text(photo("page"))
    assert not probably_has_text(photo("moon"))
    assert not probably_has_text(Image.fromarray(np.full((300, 400), 90, np.uint8)))


@pytest.mark.parametrize("mode", ["L", "CMYK", "P", "RGBA", "La", "RGBa", "I;16", "F"])
def test_any_image_mode_is_read(reader: TextReader, mode: str) -> None:
    image = with_sign(photo("chelsea"), "INVOICE 2024")
    via = {"I;16": "L", "La": "LA"}.get(mode, "RGB")  # Pillow makes these from one mode
    converted = image.convert(via).convert(mode)
    assert "invoice" in reader.read(converted).split()
    assert probably_has_text(converted)


@pytest.mark.parametrize("size", [(1, 1), (7, 300), (0, 0)])
def test_tiny_images_have_no_text(reader: TextReader, size: tuple[int, int]) -> None:
    image = Image.new("RGB", size)
    assert reader.read(image) == ""
    assert not probably_has_text(image)


def test_a_huge_image_is_scaled_down_and_still_read(reader: TextReader) -> None:
    huge = with_sign(photo("coffee"), "INVOICE 2024", size=48).resize((5000, 3750))
    assert "invoice" in reader.read(huge).split()


def test_a_timeout_gives_no_words_instead_of_blocking() -> None:
    hurried = TextReader(timeout_s=0.001)
    assert hurried.read(photo("page")) == ""


def test_noise_is_dropped_and_words_and_numbers_kept() -> None:
    words = [
        Word("INVOICE", 91), Word("2024", 95), Word("Total:", 88), Word("gRmM", 90),
        Word("xqzvt", 70), Word("Wivenhoe", 90), Word("the", 60), Word("ee", 80),
        Word("galleries", 70), Word("7", 90), Word("blurred", 20), Word("invoice", 93),
    ]  # fmt: skip
    assert clean_words(words, Dictionary()) == [
        "invoice", "2024", "total", "wivenhoe", "the", "galleries",
    ]  # fmt: skip


def test_the_evaluation_renders_text_and_scores_what_is_read() -> None:
    """scripts/eval_ocr.py: a sign rendered over a real photo, read, scored."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    import eval_ocr
    from facets_data import load

    image = eval_ocr.render(load("skimage:coffee.png"), "INVOICE 2024", "sign", random.Random(1))
    truth = eval_ocr.tokens("INVOICE 2024")
    result = eval_ocr.measure(eval_ocr.semfs_reader(), [("sign", image, truth)])
    assert result["word_recall"] == 1.0
    assert result["per_image"][0]["found"] == 2
