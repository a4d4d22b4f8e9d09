"""Decoding images for the models: Pillow, with limits, EXIF orientation applied.

Anything that is not a decodable image of sane size raises `BadImage` with a reason a
person can act on; the ingest worker records it and goes on.
"""

from __future__ import annotations

import datetime
import html
import re
import warnings
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, ImageOps, UnidentifiedImageError

XMP_SEARCH_BYTES = 1 << 20  # XMP packets sit near the start of a file
MODEL_SIDE = 384  # pixels on the longer side handed to the models (they use 224..384)

_EXIF_IMAGE_DESCRIPTION = 0x010E
_EXIF_MAKE, _EXIF_MODEL, _EXIF_DATE_TIME = 0x010F, 0x0110, 0x0132
_EXIF_IFD, _EXIF_DATE_TAKEN = 0x8769, 0x9003  # the Exif sub-IFD and DateTimeOriginal
_XMP_DESCRIPTION = re.compile(
    rb"<dc:description>.*?<rdf:li[^>]*>(.*?)</rdf:li>", re.DOTALL | re.IGNORECASE
)
# Cameras fill ImageDescription with their own boilerplate; it describes nothing.
_PLACEHOLDER_DESCRIPTIONS = {"", "default", "image", "picture", "photo", "olympus digital camera",
                             "sony dsc", "digital camera", "exif_jpeg_picture"}  # fmt: skip


class BadImage(Exception):
    """Not an image semfs can read; the message says why."""


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image  # RGB, at most MODEL_SIDE on its longer side, upright
    embedded_caption: str | None  # EXIF/XMP description written by a person, if any
    embedded_source: str | None  # "exif" or "xmp"


def decode(file: BinaryIO, max_pixels: int) -> DecodedImage:
    """Decode a seekable file. Pillow reads only what decoding needs, so a huge file costs
    no more memory than its pixels (which `max_pixels` bounds)."""
    head = file.read(XMP_SEARCH_BYTES)
    if not head:
        raise BadImage("empty file (0 bytes)")
    file.seek(0)
    try:
        with warnings.catch_warnings():
            # Our own limit below decides; Pillow's warning would only repeat it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(file)
            width, height = opened.size
            if width * height > max_pixels:
                raise BadImage(
                    f"image too large: {width}x{height} pixels is over the limit of "
                    f"{max_pixels} (a decompression bomb, or set max_image_pixels)"
                )
            caption, source = _embedded_caption(opened, head)
            opened.draft("RGB", (MODEL_SIDE, MODEL_SIDE))  # JPEG: decode at reduced size
            image = ImageOps.exif_transpose(opened)
            image = _to_rgb(image)
            image.thumbnail((MODEL_SIDE, MODEL_SIDE))
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage("not an image Pillow can read (unknown or unsupported format)") from None
    except Image.DecompressionBombError as error:
        raise BadImage(f"decompression bomb: {error}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise BadImage(f"corrupt or truncated image: {error}") from None
    return DecodedImage(image, caption, source)


@dataclass(frozen=True)
class PhotoFacts:
    """What the file says about the photo, for the query filters."""

    taken_ns: int | None = None  # EXIF DateTimeOriginal (else DateTime), read as UTC
    camera: str | None = None  # EXIF Make and Model


def read_facts(file: BinaryIO) -> PhotoFacts:
    """The photo's EXIF facts; reads the header only (no pixels). Never raises: a file
    without them, or not an image at all, has none."""
    try:
        with Image.open(file) as image:
            exif = image.getexif()
            taken = exif.get_ifd(_EXIF_IFD).get(_EXIF_DATE_TAKEN) or exif.get(_EXIF_DATE_TIME)
            make, model = (_exif_text(exif.get(tag)) for tag in (_EXIF_MAKE, _EXIF_MODEL))
    except Exception:  # any unreadable header: simply no facts
        return PhotoFacts()
    finally:
        file.seek(0)
    camera = (
        model
        if make and model and model.lower().startswith(make.lower())
        else (" ".join(part for part in (make, model) if part) or None)
    )
    return PhotoFacts(_exif_time_ns(_exif_text(taken)), camera)


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


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB on a white background (transparent cut-outs would otherwise turn black)."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode == "I;16" or image.mode.startswith("I;16"):
        image = image.point(lambda value: value / 256).convert("L")  # 16-bit grey
    return image.convert("RGB")


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
    if text.lower() in _PLACEHOLDER_DESCRIPTIONS:
        return None
    return text[:1000]
