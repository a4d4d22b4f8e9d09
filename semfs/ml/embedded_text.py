"""Whether a description stored in an image file (EXIF ImageDescription, XMP
dc:description) is one a person wrote, or junk that describes nothing.

Cameras, phones and editors fill these fields on their own: "OLYMPUS DIGITAL CAMERA",
"SONY DSC", "Exif JPEG", "Created with GIMP", the file's name, a museum's web address.
Such text, made a caption, hides what the photo shows from search; it is refused with
the reason, which ingest logs.
"""

from __future__ import annotations

import re

_URL = re.compile(
    r"(?i)\b(?:https?://|ftp://|www\.)\S+|\b[\w-]+(?:\.[\w-]+)*\.(?:com|org|net|edu|gov|de|fr|uk|it|nl|jp|io)(?:/\S*)?\b"
)
_IMAGE_EXTENSIONS = r"jpe?g|png|tiff?|heic|heif|webp|gif|bmp|raw|cr2|cr3|nef|arw|dng|orf|rw2"
_FILE_NAME = re.compile(rf"(?i)^[\w\-. ()]+\.(?:{_IMAGE_EXTENSIONS})$")
# The names cameras and phones give their files: IMG_1234, DSC01234, P1010001, PXL_2023...
_CAMERA_FILE = re.compile(
    r"(?i)^(?:img|dsc|dscn|dscf|pict|pxl|gopr|dji|mvimg|sam|wp|p)[_-]?\d[\w-]*$"
)
_BOILERPLATE = frozenset({
    "default", "image", "picture", "photo", "camera", "jpeg", "exif jpeg", "exif",
    "exif jpeg picture", "digital camera", "olympus digital camera", "sony dsc", "samsung",
    "lg electronics", "kodak digital still camera", "minolta digital camera", "hdr",
    "screenshot", "untitled", "no description", "description", "dcim", "title",
})  # fmt: skip
# Software that signs its output in the description field.
_SOFTWARE = re.compile(
    r"(?i)^(?:created|made|edited|processed|converted|generated|saved|optimi[sz]ed) "
    r"(?:with|by|using) \S|^(?:adobe )?photoshop\b|^(?:lavc|lavf|gimp|picasa|snapseed)\b"
)
_VENDOR_BOILERPLATE = re.compile(r"(?i)^[a-z]+ (?:digital (?:still )?camera|dsc|camera)$")


def refusal(text: str) -> str | None:
    """Why `text` is not a description a person wrote, or None if it may be one."""
    normal = " ".join(re.sub(r"[^\w]+", " ", text.lower()).split())
    if normal.replace("_", " ").strip() in _BOILERPLATE or _VENDOR_BOILERPLATE.match(normal):
        return "camera boilerplate"
    if _SOFTWARE.search(text.strip()):
        return "the software that wrote the file"
    if _FILE_NAME.match(text.strip()) or _CAMERA_FILE.match(text.strip()):
        return "a file name"
    rest = _URL.sub(" ", text)
    if sum(character.isalpha() for character in rest) < 3:
        return "a web address" if _URL.search(text) else "no words"
    return None
