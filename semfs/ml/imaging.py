"""Decoding images for the models: Pillow, with limits, EXIF orientation applied.

Anything that is not a decodable image of sane size raises `BadImage` with a reason a
person can act on; the ingest worker records it and goes on.
"""

from __future__ import annotations

import datetime
import html
import math
import re
from dataclasses import dataclass
from typing import BinaryIO

from PIL import ExifTags, Image, JpegImagePlugin, UnidentifiedImageError

from semfs.ml.embedded_text import refusal

XMP_SEARCH_BYTES = 1 << 20  # XMP packets sit near the start of a file
MODEL_SIDE = 384  # pixels on the longer side handed to the models (they use 224..384)

# semfs's own limits decide (`decode`, once `Image.open` has read the header, before any
# pixel is decoded). Pillow's (89 Mpx; refused at twice that, inside `open`) would refuse
# today's 100-200 Mpx cameras first and quote its own figure.
Image.MAX_IMAGE_PIXELS = None

_TRANSPOSE = {  # EXIF orientation -> what makes the image upright (as ImageOps does)
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90,
}  # fmt: skip

_EXIF_IMAGE_DESCRIPTION = 0x010E
_EXIF_MAKE, _EXIF_MODEL, _EXIF_DATE_TIME = 0x010F, 0x0110, 0x0132
_EXIF_IFD, _EXIF_DATE_TAKEN = 0x8769, 0x9003  # the Exif sub-IFD and DateTimeOriginal
_GPS_IFD = 0x8825  # its tags: 1/2 latitude ref/value, 3/4 longitude ref/value
_XMP_DESCRIPTION = re.compile(
    rb"<dc:description>.*?<rdf:li[^>]*>(.*?)</rdf:li>", re.DOTALL | re.IGNORECASE
)


class BadImage(Exception):
    """Not an image semfs can read; the message says why."""


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image  # RGB, at most MODEL_SIDE on its longer side, upright
    embedded_caption: str | None  # EXIF/XMP description written by a person, if any
    embedded_source: str | None  # "exif" or "xmp"
    embedded_refused: str | None = None  # why a stored description was not kept


def decode(
    file: BinaryIO, max_pixels: int, max_full_decode_pixels: int, side: int = MODEL_SIDE
) -> DecodedImage:
    """Decode a seekable file into what the models take (at most `side` pixels on its
    longer side: OCR asks for more).

    Pillow reads only what decoding needs. A baseline JPEG is decoded reduced (libjpeg
    scales by 1/2..1/8 as it decodes), so even a 200 Mpx photo costs a few MB, and
    `max_pixels` only refuses bombs. Any other image is decoded whole, 4 bytes a pixel
    (8 with transparency), and `max_full_decode_pixels` bounds it: PNG, WebP and TIFF
    cannot decode reduced, and a progressive JPEG is reduced only after libjpeg has held
    every coefficient (2 bytes a sample: a 108 Mpx one peaked at 344 MB)."""
    head = file.read(XMP_SEARCH_BYTES)
    if not head:
        raise BadImage("empty file (0 bytes)")
    file.seek(0)
    try:
        opened = Image.open(file)
        _check_size(opened, max_pixels, max_full_decode_pixels)
        caption, source = _embedded_caption(opened, head)
        refused = None if caption is None else refusal(caption)
        if refused is not None:
            refused, caption, source = f"{source} description {caption!r}: {refused}", None, None
        upright = _TRANSPOSE.get(_exif_orientation(opened))
        opened.draft("RGB", (side, side))  # JPEG: decode at reduced size
        # Shrunk before it is turned or converted: the old order (turn, convert, shrink)
        # held three full-size copies, 1.2 GB at the peak for a 100 Mpx RGB PNG (now one;
        # two with transparency, as Pillow shrinks a premultiplied copy).
        image = _to_rgb(_shrunk(opened, side))
        if upright is not None:
            image = image.transpose(upright)
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage("not an image Pillow can read (unknown or unsupported format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise BadImage(f"corrupt or truncated image: {error}") from None
    return DecodedImage(image, caption, source, refused)


def _check_size(image: Image.Image, max_pixels: int, max_full_decode_pixels: int) -> None:
    width, height = image.size
    pixels = width * height
    if pixels > max_pixels:
        raise BadImage(
            f"image too large: {width}x{height} is {pixels:,} pixels, over semfs's limit of "
            f"{max_pixels:,} (max_image_pixels: a decompression bomb, or raise the setting)"
        )
    reduced = isinstance(image, JpegImagePlugin.JpegImageFile) and not image.info.get("progressive")
    if not reduced and pixels > max_full_decode_pixels:
        kind = "progressive JPEG" if image.format in ("JPEG", "MPO") else image.format
        raise BadImage(
            f"image too large to decode whole: {width}x{height} {kind} is "
            f"{pixels:,} pixels, over semfs's limit of {max_full_decode_pixels:,} for images "
            f"decoded whole, 4-8 bytes a pixel (max_full_decode_pixels; only baseline JPEGs "
            f"decode reduced)"
        )


@dataclass(frozen=True)
class PhotoFacts:
    """What the file says about the photo, for the query filters."""

    taken_ns: int | None = None  # EXIF DateTimeOriginal (else DateTime), read as UTC
    camera: str | None = None  # EXIF Make and Model
    position: tuple[float, float] | None = None  # EXIF GPS latitude, longitude (degrees)


def read_facts(file: BinaryIO) -> PhotoFacts:
    """The photo's EXIF facts; reads the header only (no pixels). Never raises: a file
    without them, or not an image at all, has none."""
    try:
        with Image.open(file) as image:
            exif = image.getexif()
            taken = exif.get_ifd(_EXIF_IFD).get(_EXIF_DATE_TAKEN) or exif.get(_EXIF_DATE_TIME)
            make, model = (_exif_text(exif.get(tag)) for tag in (_EXIF_MAKE, _EXIF_MODEL))
            position = _gps_position(exif)
    except Exception:  # any unreadable header: simply no facts
        return PhotoFacts()
    finally:
        file.seek(0)
    camera = (
        model
        if make and model and model.lower().startswith(make.lower())
        else (" ".join(part for part in (make, model) if part) or None)
    )
    return PhotoFacts(_exif_time_ns(_exif_text(taken)), camera, position)


def _gps_position(exif: Image.Exif) -> tuple[float, float] | None:
    """Latitude and longitude in degrees from the GPS IFD; None if absent, broken or
    out of range (a 0,0 "null island" is what unset receivers write: none either)."""
    try:
        gps = exif.get_ifd(_GPS_IFD)
        latitude = _degrees(gps.get(2), gps.get(1), "S")
        longitude = _degrees(gps.get(4), gps.get(3), "W")
    except Exception:  # broken GPS data: no position, the rest of the facts stay
        return None
    if latitude is None or longitude is None or (latitude == 0.0 and longitude == 0.0):
        return None
    if not (-90.0 <= latitude <= 90.0 and -180.0 <= longitude <= 180.0):
        return None
    return latitude, longitude


def _degrees(value: object, ref: object, negative: str) -> float | None:
    """EXIF (degrees, minutes, seconds) rationals and an N/S or E/W reference."""
    if not isinstance(value, tuple) or len(value) != 3:
        return None
    degrees, minutes, seconds = (float(part) for part in value)
    if not all(math.isfinite(part) for part in (degrees, minutes, seconds)):
        return None
    sign = -1.0 if (_exif_text(ref) or "").upper().startswith(negative) else 1.0
    return sign * (degrees + minutes / 60.0 + seconds / 3600.0)


def _exif_text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    text = value.replace("\0", " ").strip() if isinstance(value, str) else ""
    return text or None


def _exif_time_ns(text: str | None) -> int | None:
    """EXIF writes "2023:07:14 18:03:12", local time of unknown zone: taken as UTC."""
    if text is None:
        return None
    try:
        moment = datetime.datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    return int(moment.replace(tzinfo=datetime.UTC).timestamp()) * 1_000_000_000


def _shrunk(image: Image.Image, side: int = MODEL_SIDE) -> Image.Image:
    """At most `side` pixels on its longer side, in a mode `_to_rgb` takes."""
    # Pillow shrinks palette and 1-bit images without filtering, and 16-bit grey not at
    # all: those are converted first, from their 1-2 bytes a pixel.
    if image.mode == "1":
        image = image.convert("L")
    elif image.mode == "PA" or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
    elif image.mode == "P":
        image = image.convert("RGB")
    elif image.mode.startswith("I;16"):
        image = image.point(lambda value: value / 256).convert("L")  # 16-bit grey
    image.thumbnail((side, side))
    return image


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB on a white background (transparent cut-outs would otherwise turn black)."""
    if image.mode in ("RGBA", "LA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _exif_orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(ExifTags.Base.Orientation, 1))
    except Exception:  # broken EXIF must not make the image unreadable
        return 1


def _embedded_caption(image: Image.Image, data: bytes) -> tuple[str | None, str | None]:
    """A description a person stored in the file: XMP dc:description, else EXIF."""
    match = _XMP_DESCRIPTION.search(data) if b"dc:description" in data else None
    if match:
        text = _clean(html.unescape(match.group(1).decode("utf-8", errors="replace")))
        if text:
            return text, "xmp"
    try:
        value = image.getexif().get(_EXIF_IMAGE_DESCRIPTION)
    except Exception:  # broken EXIF must not make the image unreadable
        return None, None
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    text = _clean(value) if isinstance(value, str) else None
    return (text, "exif") if text else (None, None)


def _clean(text: str) -> str | None:
    text = " ".join(text.replace("\0", " ").split())
    return text[:1000] or None  # boilerplate and the like: embedded_text.refusal
