"""An image's description: the model's caption, with what a person wrote.

- A caption the user set on the file (the `user.semfs.caption` xattr) is the whole
  description: the user said what the photo shows.
- A description stored in the file by a person (XMP dc:description, EXIF
  ImageDescription; junk such as camera boilerplate is refused when decoding:
  ml/embedded_text.py) is added to the model's caption, not put in its place: it is often
  a title, a place or a name ("Grandma at the lake") that says nothing of what is in the
  picture, and the model's words keep the photo findable by what it shows.

Keywords (the tags view's) of what people wrote are YAKE's (ml/keywords.py); of the
classifier's captions, the tags of their labels (ml/label_tags.py), never words of the
caption's text; of another model's free text, YAKE's.
"""

from __future__ import annotations

import logging
import os

from semfs.catalog.records import Description
from semfs.config import CAPTION_XATTR
from semfs.ml.captioner import LabelCaption
from semfs.ml.imaging import DecodedImage
from semfs.ml.keywords import keywords

log = logging.getLogger(__name__)

MAX_USER_CAPTION_BYTES = 4096


def users_description(text: str) -> Description:
    """The caption a person set on the file: it wins over the model's."""
    return Description(text, "user", "user", keywords(text))


def model_description(caption: str, captioner: str, image: DecodedImage) -> Description:
    """The model's caption of `image`, and the description stored in the file, if any."""
    text = str(caption) or "an image"  # a model may say nothing; keep it findable
    tags = list(caption.tags) if isinstance(caption, LabelCaption) else keywords(text)
    if image.embedded_caption is None:
        return Description(text, "model", captioner, tags)
    source = image.embedded_source or "exif"
    words = keywords(image.embedded_caption) + tags
    both = f"{text}. {image.embedded_caption}"
    return Description(both, f"model+{source}", captioner, list(dict.fromkeys(words)))


def user_caption(fd: int, path: bytes) -> str | None:
    """The caption a person set on the file (`setfattr -n user.semfs.caption`)."""
    try:
        value = os.getxattr(fd, CAPTION_XATTR)
    except OSError:
        return None  # no such attribute, or the filesystem has none
    text = value[:MAX_USER_CAPTION_BYTES].decode("utf-8", errors="replace")
    text = " ".join(text.replace("\0", " ").split())
    if len(value) > MAX_USER_CAPTION_BYTES:
        log.warning("%r: user caption cut to %d bytes", os.fsdecode(path), MAX_USER_CAPTION_BYTES)
    return text or None
