"""Text in the image (OCR), read in the idle pass: a photo is searchable by its caption
first, and by the words in it once this pass has read it.

OCR costs ~200 ms of CPU an image (semfs/ml/ocr.py, docs/facets-detectors.md), too
much for ingest's path, so every described image waits in the catalog's text queue
(catalog/texts.py) and, when ingest has no caption and no image features left to
compute, is decoded again at up to 2,048 pixels (letters need more than the models'
384), given the cheap text test (~24 ms), and read only if that says it holds text.
The words are stored (`descriptions.text`, the `user.semfs.text` xattr); with
`facet_text = "caption"` they are added to the caption ("..., with the text: invoice
2024"), which is embedded again and its new vector added to the index, as ingest does;
with "tags" the longer words become keywords instead (tags/invoice/): not with
"caption", since OCR's stray words (19 of the 54 evaluation photos got some, a coffee
cup read as "tree") would fill tags/ with junk. A caption a person set is left as
written. An image that cannot be read gets no words and is not
tried again until it changes; a kill -9 loses nothing (the queue is in the catalog).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from semfs.catalog.texts import TextResult, TextTask
from semfs.config import Settings
from semfs.errors import ModelError
from semfs.ml.imaging import BadImage, decode
from semfs.ml.ocr import OCR_MAX_SIDE, probably_has_text, read_text
from semfs.search.engine import Engine
from semfs.store.backing import BackingStore

log = logging.getLogger(__name__)

TEXT_BATCH = 4  # images per idle step: about a second of CPU when all hold text
CAPTION_WORDS = 40  # words added to the caption at most (the embedder reads ~128 tokens)
TEXT_KEYWORDS = 10  # keywords from the text at most
KEYWORD_MIN_LETTERS = 4  # shorter words read are too often noise or function words
TEXT_PREFIX = "with the text:"

Mapper = Callable[[Callable[[TextTask], str], Iterable[TextTask]], Iterator[str]]


def read_texts(engine: Engine, store: BackingStore, mapper: Mapper = map) -> int:
    """One batch of the text queue; returns how many images it took (0: none waits, or
    the facet is off). Raises ModelError if Tesseract cannot load (the images stay
    queued)."""
    settings = engine.settings
    if settings.facet_text == "off":
        return 0
    tasks = engine.catalog.texts.text_tasks(TEXT_BATCH)
    if not tasks:
        return 0
    limits = (settings.max_image_pixels, settings.max_full_decode_pixels)
    step_aside = engine.foreground.step_aside  # for searches, before each image's work

    def read(task: TextTask) -> str:
        step_aside()
        return _read(store, task, *limits)

    texts = list(mapper(read, tasks))
    results = [text_result(task, text, settings) for task, text in zip(tasks, texts, strict=True)]
    to_embed = [i for i, result in enumerate(results) if result.caption is not None]
    if to_embed:
        step_aside()
        captions = [results[i].caption or "" for i in to_embed]
        for i, vector in zip(to_embed, engine.embedder.embed(captions), strict=True):
            results[i] = TextResult(results[i].task, results[i].text, results[i].keywords,
                                    results[i].caption, vector.tobytes())  # fmt: skip
    vectors = {result.task.file_id: result.vector for result in results if result.vector}
    step_aside()
    for file_id, seq in engine.catalog.texts.store_texts(engine.embedder.name, results):
        vector = vectors[file_id]
        engine.text.index.add(file_id, seq, np.frombuffer(vector, dtype=np.float32))
    return len(tasks)


def text_result(task: TextTask, text: str, settings: Settings) -> TextResult:
    """What the words read change: the keywords (facet_text = "tags"), or (facet_text =
    "caption", a model's caption) the caption, unless it has them already (a copy's
    description)."""
    words = text.split()
    if not words:
        return TextResult(task, "")
    keywords = None
    found = [w for w in words if w.isalpha() and len(w) >= KEYWORD_MIN_LETTERS][:TEXT_KEYWORDS]
    if found and settings.facet_text == "tags":
        merged = tuple(dict.fromkeys([*task.keywords, *found]))
        keywords = merged if merged != task.keywords else None
    caption = None
    if settings.facet_text == "caption" and task.source != "user":
        phrase = f"{TEXT_PREFIX} {' '.join(words[:CAPTION_WORDS])}"
        if phrase not in task.caption:
            caption = f"{task.caption.rstrip(' .,')}, {phrase}"
    return TextResult(task, text, keywords, caption)


def _read(store: BackingStore, task: TextTask, max_pixels: int, max_full_decode_pixels: int) -> str:
    """The words in the image at `task.path`; "" if it holds none the test or Tesseract
    finds, or cannot be read. ModelError (no Tesseract) is raised."""
    try:
        fd = store.open(task.path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return ""  # gone or changed: the tracker requeues it, which queues it here again
    try:
        file = os.fdopen(fd, "rb")
    except OSError:
        os.close(fd)
        return ""
    with file:
        try:
            image = decode(file, max_pixels, max_full_decode_pixels, side=OCR_MAX_SIDE).image
        except (BadImage, OSError) as error:
            log.debug("no text read of %r: %s", os.fsdecode(task.path), error)
            return ""
    try:
        return read_text(image) if probably_has_text(image) else ""
    except ModelError:
        raise
    except Exception:  # an odd image: no words, the pass goes on
        log.exception("text not read of %r", os.fsdecode(task.path))
        return ""
