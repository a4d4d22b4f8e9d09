"""Image features for search by example, for the images that did not get them with
their caption.

The default captioner computes them in its own pass (ingest stores both together);
images described otherwise (a caption a person gave, a transformers captioner, a store
from before, a new features model) wait in the catalog's feature queue (every newly
described image lands there, see catalog/schema.py). When ingest's own queue is empty it
takes them, decodes them again and runs the features model. An image that cannot be
decoded (a caption a person gave to a file that is no image) gets no features and is
simply not found by example. A kill -9 loses nothing: the queue is in the catalog, and
a result is stored together with taking its task off the queue.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator

import numpy as np
from PIL import Image

from semfs.catalog.features import FeatureTask
from semfs.ml.imaging import BadImage, decode
from semfs.search.engine import Engine
from semfs.store.backing import BackingStore

log = logging.getLogger(__name__)

Mapper = Callable[[Callable[[FeatureTask], Image.Image | None], Iterable[FeatureTask]],
                  Iterator[Image.Image | None]]  # fmt: skip


def compute_features(engine: Engine, store: BackingStore, mapper: Mapper = map) -> int:
    """One batch of the feature queue; returns how many tasks it took (0: none waits).
    `mapper` decodes the images (the ingest worker's thread pool). Raises ModelError if
    the model cannot load (the tasks stay queued)."""
    if engine.images is None:
        return 0
    index = engine.images.index
    tasks = engine.catalog.features.feature_tasks(engine.settings.ingest_batch)  # per model call
    if not tasks:
        return 0
    limits = (engine.settings.max_image_pixels, engine.settings.max_full_decode_pixels)
    step_aside = engine.foreground.step_aside  # for searches, before each image's work

    def decoded_image(task: FeatureTask) -> Image.Image | None:
        step_aside()
        return _decode(store, task, *limits)

    images = list(mapper(decoded_image, tasks))
    decoded = [image for image in images if image is not None]
    features = engine.image_features()
    step_aside()
    rows = iter(features.features(decoded)) if decoded else iter(())
    vectors: list[bytes | None] = [
        None if image is None else next(rows).tobytes() for image in images
    ]
    step_aside()
    stored = engine.catalog.features.store_features(
        features.name, list(zip(tasks, vectors, strict=True))
    )
    by_id = {task.file_id: vector for task, vector in zip(tasks, vectors, strict=True)}
    for file_id, seq in stored:
        vector = by_id[file_id]
        assert vector is not None
        index.add(file_id, seq, np.frombuffer(vector, dtype=np.float32))
    return len(tasks)


def _decode(
    store: BackingStore, task: FeatureTask, max_pixels: int, max_full_decode_pixels: int
) -> Image.Image | None:
    try:
        fd = store.open(task.path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None  # gone or changed: the tracker requeues it, which queues it here again
    try:
        file = os.fdopen(fd, "rb")
    except OSError:  # a directory now (renamed over it): likewise
        os.close(fd)
        return None
    with file:
        try:
            return decode(file, max_pixels, max_full_decode_pixels).image
        except (BadImage, OSError) as error:
            # Ingest reported it already when it could not caption it; say it once.
            log.debug("no image features for %r: %s", os.fsdecode(task.path), error)
            return None
