"""Decoding for the models: bad input gives BadImage with a reason; good input comes out
upright RGB of bounded size."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from semfs.ml.imaging import MODEL_SIDE, BadImage, decode

LIMIT = 50_000_000


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def test_a_photo_decodes_to_bounded_rgb(photos: dict[str, Path]) -> None:
    with open(photos["astronaut.png"], "rb") as file:
        decoded = decode(file, LIMIT)
    assert decoded.image.mode == "RGB"
    assert max(decoded.image.size) <= MODEL_SIDE
    assert decoded.embedded_caption is None


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"just some notes, named like a photo\n", "not an image"),
        (encoded(Image.new("RGB", (300, 200), "red"), "JPEG")[:400], "truncated"),
        (encoded(Image.new("RGB", (300, 200), "red"), "PNG")[:80], "truncated"),
        (encoded(Image.new("RGB", (300, 200), "red"), "WEBP")[:60], "image"),
        (encoded(Image.new("P", (300, 200)), "GIF")[:40], "image"),
    ],
    ids=["empty", "text", "truncated-jpeg", "truncated-png", "truncated-webp", "truncated-gif"],
)
def test_bad_input_is_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(BadImage, match=reason):
        decode(io.BytesIO(data), LIMIT)


def test_decompression_bomb_is_refused_before_decoding() -> None:
    bomb = encoded(Image.new("1", (12_000, 12_000)), "PNG")  # 144 Mpx in a few kB
    assert len(bomb) < 100_000
    with pytest.raises(BadImage, match="too large"):
        decode(io.BytesIO(bomb), 100_000_000)


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (80, 40), "blue")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees to show
    decoded = decode(io.BytesIO(encoded(image, "JPEG", exif=exif)), LIMIT)
    assert decoded.image.size == (40, 80)


def test_exif_description_is_a_caption_and_camera_boilerplate_is_not() -> None:
    image = Image.new("RGB", (30, 30), "green")
    for text, expected in (
        ("A dog on a red sofa", "A dog on a red sofa"),
        ("OLYMPUS DIGITAL CAMERA", None),
    ):
        exif = Image.Exif()
        exif[0x010E] = text
        decoded = decode(io.BytesIO(encoded(image, "JPEG", exif=exif)), LIMIT)
        assert decoded.embedded_caption == expected


def test_transparent_cutout_goes_on_white_and_16_bit_grey_is_read() -> None:
    cutout = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    decoded = decode(io.BytesIO(encoded(cutout, "PNG")), LIMIT)
    assert decoded.image.getpixel((5, 5)) == (255, 255, 255)
    grey16 = Image.new("I;16", (20, 20), 65535)
    decoded = decode(io.BytesIO(encoded(grey16, "PNG")), LIMIT)
    assert decoded.image.mode == "RGB" and decoded.image.getpixel((5, 5))[0] > 200
