"""Decoding for the models: bad input gives BadImage with a reason; good input comes out
upright RGB of bounded size."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from semfs.config import Settings
from semfs.ingest.descriptions import model_description
from semfs.ml.embedded_text import refusal
from semfs.ml.imaging import MODEL_SIDE, BadImage, decode

LIMIT = 50_000_000
DEFAULTS = Settings(store=Path("."))
LIMITS = (DEFAULTS.max_image_pixels, DEFAULTS.max_full_decode_pixels)


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def test_a_photo_decodes_to_bounded_rgb(photos: dict[str, Path]) -> None:
    with open(photos["astronaut.png"], "rb") as file:
        decoded = decode(file, LIMIT, LIMIT)
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
        decode(io.BytesIO(data), LIMIT, LIMIT)


def png_declaring(width: int, height: int) -> bytes:
    """A valid PNG header claiming a huge image, with no pixel data behind it."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    ihdr = struct.pack(">I", len(header)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return b"\x89PNG\r\n\x1a\n" + ihdr + b"\0\0\0\0IEND\xaeB`\x82"


def test_a_900_megapixel_bomb_is_refused_quoting_semfs_limit() -> None:
    with pytest.raises(BadImage) as refused:
        decode(io.BytesIO(png_declaring(30_000, 30_000)), *LIMITS)
    reason = str(refused.value)
    assert "30000x30000 is 900,000,000 pixels" in reason
    assert "limit of 250,000,000 (max_image_pixels" in reason
    assert "178956970" not in reason  # Pillow's own limit, which used to fire first


def test_a_big_image_that_must_be_decoded_whole_is_refused() -> None:
    bomb = encoded(Image.new("1", (12_000, 12_000)), "PNG")  # 144 Mpx in a few kB
    assert len(bomb) < 100_000
    with pytest.raises(
        BadImage, match=r"too large to decode whole: 12000x12000 PNG .* 100,000,000"
    ):
        decode(io.BytesIO(bomb), *LIMITS)


def test_a_progressive_jpeg_counts_as_decoded_whole_a_baseline_one_does_not() -> None:
    image = Image.new("RGB", (2_000, 1_000), (30, 90, 160))
    baseline = encoded(image, "JPEG")
    progressive = encoded(image, "JPEG", progressive=True)
    assert decode(io.BytesIO(baseline), LIMIT, 1_000_000).image.size == (MODEL_SIDE, 192)
    with pytest.raises(BadImage, match=r"2000x1000 progressive JPEG .* limit of 1,000,000"):
        decode(io.BytesIO(progressive), LIMIT, 1_000_000)


# Decodes a file with semfs's default limits in a fresh process and prints the result's
# size and the process's peak resident memory (KiB), which a full decode would show.
# VmHWM, not ru_maxrss: that one keeps the parent's peak across fork and exec.
DECODE_AND_MEASURE = """
import re, sys
from pathlib import Path
from semfs.config import Settings
from semfs.ml.imaging import decode
settings = Settings(store=Path("."))
with open(sys.argv[1], "rb") as file:
    image = decode(file, settings.max_image_pixels, settings.max_full_decode_pixels).image
with open("/proc/self/status") as status:
    peak = re.search(r"VmHWM:\\s*(\\d+) kB", status.read()).group(1)
print(image.mode, *image.size, peak)
"""


def test_a_100_megapixel_camera_jpeg_is_decoded_reduced(tmp_path: Path) -> None:
    """11648x8736 is a Fujifilm GFX100's frame: decoded, in a small fraction of the 400 MB
    its pixels would take whole."""
    photo = tmp_path / "camera.jpg"
    Image.new("RGB", (11_648, 8_736), (200, 120, 40)).save(photo, quality=20)
    result = subprocess.run([sys.executable, "-c", DECODE_AND_MEASURE, str(photo)],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    mode, width, height, peak_kib = result.stdout.split()
    assert (mode, int(width), int(height)) == ("RGB", MODEL_SIDE, 288)
    assert int(peak_kib) < 150_000, f"peak {peak_kib} KiB: decoded whole?"


def test_a_200_megapixel_jpeg_passes_where_pillow_would_refuse_it() -> None:
    """Over Pillow's own refusal (178,956,970 pixels), under semfs's limit."""
    photo = encoded(Image.new("L", (16_384, 12_288), 90), "JPEG", quality=20)  # 201 Mpx
    assert decode(io.BytesIO(photo), *LIMITS).image.size == (MODEL_SIDE, 288)


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (80, 40), "blue")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees to show
    decoded = decode(io.BytesIO(encoded(image, "JPEG", exif=exif)), LIMIT, LIMIT)
    assert decoded.image.size == (40, 80)


def test_exif_description_is_a_caption_and_camera_boilerplate_is_not() -> None:
    image = Image.new("RGB", (30, 30), "green")
    for text, expected in (
        ("A dog on a red sofa", "A dog on a red sofa"),
        ("OLYMPUS DIGITAL CAMERA", None),
    ):
        exif = Image.Exif()
        exif[0x010E] = text
        decoded = decode(io.BytesIO(encoded(image, "JPEG", exif=exif)), LIMIT, LIMIT)
        assert decoded.embedded_caption == expected


def test_transparent_cutout_goes_on_white_and_16_bit_grey_is_read() -> None:
    cutout = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    decoded = decode(io.BytesIO(encoded(cutout, "PNG")), LIMIT, LIMIT)
    assert decoded.image.getpixel((5, 5)) == (255, 255, 255)
    grey16 = Image.new("I;16", (20, 20), 65535)
    decoded = decode(io.BytesIO(encoded(grey16, "PNG")), LIMIT, LIMIT)
    assert decoded.image.mode == "RGB" and decoded.image.getpixel((5, 5))[0] > 200


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("Exif JPEG", "camera boilerplate"),
        ("OLYMPUS DIGITAL CAMERA", "camera boilerplate"),
        ("SONY DSC", "camera boilerplate"),
        ("KODAK Digital Still Camera", "camera boilerplate"),
        ("EXIF_JPEG_PICTURE", "camera boilerplate"),
        ("Created with GIMP", "the software that wrote the file"),
        ("IMG_1234.JPG", "a file name"),
        ("DSC01234", "a file name"),
        ("https://www.museum.example.org/collection/object/12345", "a web address"),
        ("www.rijksmuseum.nl", "a web address"),
        ("1234 5678", "no words"),
        ("-----", "no words"),
        ("Lighthouse & waves", None),
        ("Grandma's 80th birthday at the lake", None),
        ("Sunset over the bay, more at https://example.org/bay", None),
        ("A dog on a red sofa", None),
    ],
)
def test_descriptions_people_wrote_are_kept_and_junk_is_refused_with_a_reason(
    text: str, why: str | None
) -> None:
    assert refusal(text) == why
    exif = Image.Exif()
    exif[0x010E] = text
    photo = encoded(Image.new("RGB", (30, 30), "green"), "JPEG", exif=exif)
    decoded = decode(io.BytesIO(photo), LIMIT, LIMIT)
    assert decoded.embedded_caption == (text if why is None else None)
    assert (decoded.embedded_refused is None) == (why is None)
    if why is not None:
        assert decoded.embedded_refused is not None and why in decoded.embedded_refused


def test_a_kept_description_is_added_to_the_models_caption() -> None:
    exif = Image.Exif()
    exif[0x010E] = "Grandma at the lake"
    decoded = decode(io.BytesIO(encoded(Image.new("RGB", (30, 30)), "JPEG", exif=exif)),
                     LIMIT, LIMIT)  # fmt: skip
    both = model_description("a photo of a canoe", "classifier:x", decoded)
    assert both.caption == "a photo of a canoe. Grandma at the lake"
    assert (both.source, both.captioner) == ("model+exif", "classifier:x")
    assert "canoe" in both.keywords and any("lake" in word for word in both.keywords)
    plain = decode(io.BytesIO(encoded(Image.new("RGB", (30, 30)), "JPEG")), LIMIT, LIMIT)
    assert model_description("", "classifier:x", plain).caption == "an image"
