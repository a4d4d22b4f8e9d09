"""Keywords of a caption, for the tags view: YAKE (statistical, offline, no model)."""

from __future__ import annotations

import threading

import yake

MAX_KEYWORDS = 8
# Words our own caption templates add; they describe no image.
_TEMPLATE_WORDS = frozenset({"photo", "picture", "image", "photograph"})

_local = threading.local()  # YAKE extractors are not documented as thread-safe


def keywords(caption: str) -> list[str]:
    """Lower-case keywords and two-word phrases, most characteristic first."""
    extractor = getattr(_local, "extractor", None)
    if extractor is None:
        extractor = _local.extractor = yake.KeywordExtractor(
            lan="en", n=2, top=MAX_KEYWORDS * 2, dedup_lim=0.9
        )
    found: list[str] = []
    for phrase, _score in extractor.extract_keywords(caption):
        text = " ".join(phrase.lower().split())
        if text and text not in found and not set(text.split()) <= _TEMPLATE_WORDS:
            found.append(text)
    return found[:MAX_KEYWORDS]
