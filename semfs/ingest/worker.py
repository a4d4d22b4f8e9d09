"""The ingest worker: turns queued images into captions, keywords and vectors.

One coordinator thread takes batches off the catalog's durable queue; a bounded pool of
threads reads and decodes them (Pillow) and computes their facets; the models then run
on the whole batch while the pool reads the next one; each result is written to the
catalog together with taking the file off the queue (one transaction), then added to
the index. A kill -9 at any point loses nothing: what was not committed is still
queued, and what was committed is in the catalog, from which the index's delta is
rebuilt at the next start. Nothing runs on the trio thread, and every thread here steps
aside between images while a search runs (search/foreground.py).

A bad image (truncated, not an image, a decompression bomb, 0 bytes) is recorded as
failed with its reason; an unexpected error is retried later, a few times.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image

from semfs.catalog.database import Description, QueueItem
from semfs.errors import ModelError
from semfs.ingest.descriptions import model_description, user_caption, users_description
from semfs.ingest.facets import Facets, compute_facets, tokens, with_facets
from semfs.ingest.features import compute_features
from semfs.ingest.texts import read_texts
from semfs.ml.captioner import Captioner, ClassifierCaptioner
from semfs.ml.imaging import BadImage, DecodedImage, PhotoFacts, decode, read_facts
from semfs.search.engine import Engine, LoadFailed, NotReady
from semfs.search.index import VectorIndex
from semfs.store.backing import BackingStore

log = logging.getLogger(__name__)


MAX_ATTEMPTS = 3
IDLE_POLL = 2.0  # seconds between queue checks when nobody wakes the worker
CAPTIONER_RETRY = 60.0  # seconds between attempts to load a captioner that failed
# Ingest, the features backfill and index rebuilds run this much nicer than searches:
# on a busy machine the kernel gives a search's thread the CPU first (nice is per
# thread on Linux; threads started from this one, and the models' pools, inherit it).
INGEST_NICENESS = 10
VANISHED_WAIT = 1.0  # seconds before a file not found where queued is tried again
CATALOG_RETRY = 5.0  # seconds between attempts to write a catalog that refused (disk full)
# Seconds between counts of a base's dead vectors, whether a rebuild is due: 80-100 ms
# at 1 M; after every batch of 8 that took 40 % of ingest's time (py-spy) and a core
# from the searches. Whether the delta is full is known in memory, and checked always.
DEAD_VECTORS_CHECK = 10.0
BACKFILL_BATCH = 256  # images whose EXIF facts are read per idle step (about 0.1 s)
# Images per captioner call. Ingest steps aside for searches between calls, not during
# one: a call on the whole batch of 8 ran ~200 ms beside the searches that began in it.
MODEL_STEP = 2


class CaptionerUnavailable(Exception):
    """The captioner cannot load (offline hub, bad name): ingest waits, images stay queued."""


@dataclass
class Prepared:
    """A queued file read and decoded, or already described."""

    item: QueueItem
    description: Description | None = None  # known without the captioner
    image: DecodedImage | None = None  # needs the captioner
    vector: bytes | None = None  # reused from an identical file
    image_vector: bytes | None = None  # its image features, likewise
    facts: PhotoFacts = field(default_factory=PhotoFacts)  # for the query filters
    facets: Facets | None = None  # None: a copy's description, facets included, is reused


@dataclass
class ReadAhead:
    """A batch handed to the decoders before the models are free for it: on 2 cores,
    reading and decoding (and the people facet) overlap the models' work instead of
    waiting for it."""

    items: list[QueueItem]
    futures: list[Future[Prepared | None]]

    def prepared(self) -> list[Prepared]:
        return [p for p in (future.result() for future in self.futures) if p is not None]


class IngestWorker:
    def __init__(
        self, engine: Engine, store: BackingStore, on_indexed: Callable[[], None] = lambda: None
    ) -> None:
        self._engine = engine
        self._catalog = engine.catalog
        self._settings = engine.settings
        self._store = store
        self._on_indexed = on_indexed
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._decoders = ThreadPoolExecutor(
            max_workers=self._settings.ingest_workers, thread_name_prefix="semfs-decode"
        )
        self._rebuilder: threading.Thread | None = None
        # The next batch, taken off the queue and being read by the decoders while the
        # models describe the current one. Only the coordinator thread touches it.
        self._ahead: ReadAhead | None = None
        # Files not found where queued (decoder threads write): file id -> when.
        self._vanished_at: dict[int, float] = {}
        self._vanished_lock = threading.Lock()
        self._features_paused_until = 0.0  # the features model failed to load: wait
        self._dead_vectors_check = 0.0  # when the bases' dead vectors are next counted
        self._texts_paused_until = 0.0  # Tesseract failed to load: wait

    def wake(self) -> None:
        """New work is queued (called from any thread)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def run(self) -> None:
        """Ingest until stopped (the daemon's background thread)."""
        try:
            os.nice(INGEST_NICENESS)  # this thread only
        except OSError as error:
            log.warning("ingest runs at the searches' priority: %s", error)
        try:
            while not self._stop.is_set():
                try:
                    self._engine.wait_ready(timeout=0.5)
                    break
                except LoadFailed:
                    raise
                except NotReady:
                    continue
            if self._stop.is_set():
                return
            while not self._stop.is_set():
                try:
                    self._resume()
                    break
                except sqlite3.OperationalError as error:
                    self._pause_for_catalog(error)
            last_work = time.monotonic()
            while not self._stop.is_set():
                try:
                    taken = self.run_batch()
                except CaptionerUnavailable as error:
                    log.error("ingest paused: %s (retrying in %.0f s)", error, CAPTIONER_RETRY)
                    self._stop.wait(CAPTIONER_RETRY)
                    continue
                except sqlite3.OperationalError as error:
                    self._pause_for_catalog(error)
                    continue
                if taken:
                    last_work = time.monotonic()
                elif self._idle_work() == 0:
                    self._release_captioner_if_idle(last_work)
                    self._wake.wait(IDLE_POLL)
                    self._wake.clear()
        except Exception:
            log.exception("ingest stopped")
        finally:
            self._decoders.shutdown(wait=False, cancel_futures=True)

    def _resume(self) -> None:
        """What a start owes to earlier runs: failures that were not the images' fault,
        captions waiting for the current embedder."""
        self._engine.record_models()
        if requeued := self._catalog.queue.requeue_ingest_errors():
            log.info("queued %d images again that had failed with an ingest error", requeued)
        if self._engine.images is not None:
            self._engine.convert_image_features(should_stop=self._stop.is_set)
            model = self._engine.image_model
            if requeued := self._catalog.features.requeue_features_not_by(model):
                log.info("computing image features again for %d images (now %s)", requeued, model)
        if self._engine.reembed(should_stop=self._stop.is_set):
            self._on_indexed()

    def _idle_work(self) -> int:
        """What ingest does when no image waits for a caption; how much it did. Never
        stops ingest: an unexpected error is logged and the work tried again later."""
        try:
            return self._backfill_facts() or self._compute_features() or self._read_texts()
        except sqlite3.OperationalError:
            raise  # the catalog refused a write: ingest pauses (run)
        except Exception:
            log.exception(
                "idle work (photo facts, image features, text) failed; trying again later"
            )
            return 0

    def _read_texts(self) -> int:
        """When captions and image features are done: the words in the images (OCR,
        ingest/texts.py), a few at a time. Returns how many images were taken."""
        if time.monotonic() < self._texts_paused_until:
            return 0
        try:
            taken = read_texts(self._engine, self._store, self._decoders.map)
        except ModelError as error:
            log.error("text in images paused: %s (retrying in %.0f s)", error, CAPTIONER_RETRY)
            self._texts_paused_until = time.monotonic() + CAPTIONER_RETRY
            return 0
        if taken:
            self._on_indexed()
        return taken

    def _compute_features(self) -> int:
        """When the caption queue is empty: image features for search by example, a
        batch at a time. Returns how many images were taken."""
        if time.monotonic() < self._features_paused_until:
            return 0
        try:
            taken = compute_features(self._engine, self._store, self._decoders.map)
        except ModelError as error:
            log.error("image features paused: %s (retrying in %.0f s)", error, CAPTIONER_RETRY)
            self._features_paused_until = time.monotonic() + CAPTIONER_RETRY
            return 0
        if taken:
            self._on_indexed()
            self.maybe_rebuild()
        return taken

    def _release_captioner_if_idle(self, last_work: float) -> None:
        after = self._settings.release_captioner_after
        if after > 0 and time.monotonic() - last_work >= after:
            self._engine.release_captioner()

    def _backfill_facts(self) -> int:
        """When idle: read the EXIF facts (year:, camera: filters) of images described
        before the catalog kept them, a batch at a time. Returns how many were read."""
        start = self._catalog.get_meta("facts_backfilled_to")
        if start is None:
            return 0
        files = self._catalog.queue.described_after(int(start), BACKFILL_BATCH)
        facts = []
        for file_id, path in files:
            self._engine.foreground.step_aside()
            try:
                fd = self._store.open(path, os.O_RDONLY | os.O_NONBLOCK)
            except OSError:
                continue  # gone or unreadable: the tracker or ingest deals with it
            try:
                file = os.fdopen(fd, "rb")
            except OSError:  # a directory now (renamed over it): the tracker deals with it
                os.close(fd)
                continue
            with file:
                found = read_facts(file)
            facets = tokens(compute_facets(self._settings, None, found))  # no pixels read
            facts.append((file_id, found.taken_ns, found.camera, facets))
        self._catalog.queue.set_facts(facts, files[-1][0] if files else 0)
        if not files:
            log.info("photo facts (EXIF date and camera) read for every described image")
        return len(files)

    def _pause_for_catalog(self, error: sqlite3.OperationalError) -> None:
        """The catalog refused a write (a full disk, most often): nothing is lost, the
        queue is durable; try again in a while."""
        log.error("ingest paused: cannot write the catalog: %s (retrying in %.0f s)",
                  error, CATALOG_RETRY)  # fmt: skip
        self._stop.wait(CATALOG_RETRY)

    def run_batch(self) -> int:
        """Ingest one batch; returns how many queued files it took (0: queue empty).

        Raises CaptionerUnavailable, leaving the batch queued, when the captioner cannot
        load: that is no image's fault, and counting it against them would fail them all.
        """
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            ahead = self._read_ahead(skip=[])
            if ahead is None:
                return 0
        items = ahead.items
        prepared = ahead.prepared()
        # The next batch is read while the models describe this one (its files skipped:
        # still queued until stored).
        self._ahead = self._read_ahead(skip=[item.record.id for item in items])
        try:
            self._describe_and_store(prepared)
        except (CaptionerUnavailable, sqlite3.OperationalError):
            raise  # no image's fault either: not counted against them
        except Exception as error:  # a model failed: not the images' fault, try again later
            log.exception("ingest batch failed")
            for entry in prepared:
                self._catalog.queue.retry_later(entry.item, f"ingest error: {error}", MAX_ATTEMPTS)
        self._on_indexed()
        self.maybe_rebuild()
        return len(items)

    def _read_ahead(self, skip: list[int]) -> ReadAhead | None:
        """The next batch off the queue, handed to the decoders; None if none is queued."""
        items = self._catalog.queue.queue_items(
            self._settings.ingest_batch, skip=[*skip, *self._waiting_for_tracker()]
        )
        if not items:
            return None
        return ReadAhead(items, [self._decoders.submit(self._prepare_safely, i) for i in items])

    def wait_for_rebuild(self) -> None:
        """Let a running index rebuild finish (so `semfs index` leaves a published base)."""
        if self._rebuilder is not None:
            self._rebuilder.join()

    # --- reading -----------------------------------------------------------------------

    def _prepare_safely(self, item: QueueItem) -> Prepared | None:
        self._engine.foreground.step_aside()
        try:
            return self._prepare(item)
        except sqlite3.OperationalError:
            raise  # the catalog's trouble, not the image's
        except Exception as error:  # e.g. MemoryError: retried later, a few times
            log.exception("cannot read %r", os.fsdecode(item.record.path))
            self._catalog.queue.retry_later(item, f"ingest error: {error!r}", MAX_ATTEMPTS)
            return None

    def _prepare(self, item: QueueItem) -> Prepared | None:
        path = item.record.path
        try:
            fd = self._store.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            self._vanished(item)
            return None
        except OSError as error:
            self._catalog.queue.fail(item, f"cannot open: {os.strerror(error.errno or 0)}")
            return None
        with os.fdopen(fd, "rb") as file:
            facts = read_facts(file)
            caption_set = user_caption(fd, path)
            if caption_set is not None:
                facets = compute_facets(self._settings, None, facts)
                return Prepared(item, users_description(caption_set), facts=facts, facets=facets)
            if item.record.content_hash:
                reused = self._catalog.queue.reusable(
                    item.record.content_hash, self._engine.embedder.name
                )
                if reused is not None:
                    features = self._features_of_content(item.record.content_hash)
                    return Prepared(item, reused[0], vector=reused[1], image_vector=features,
                                    facts=facts)  # fmt: skip
            try:
                image = decode(file, self._settings.max_image_pixels,
                               self._settings.max_full_decode_pixels)  # fmt: skip
            except BadImage as error:
                log.warning("skipping %r: %s", os.fsdecode(path), error)
                self._catalog.queue.fail(item, str(error))
                return None
            except OSError as error:
                self._catalog.queue.fail(item, f"cannot read: {os.strerror(error.errno or 0)}")
                return None
        if image.embedded_refused is not None:
            log.info("%r: ignoring its %s", os.fsdecode(path), image.embedded_refused)
        facets = compute_facets(self._settings, image.image, facts)
        # a stored description is added to the caption
        return Prepared(item, image=image, facts=facts, facets=facets)

    def _features_of_content(self, content_hash: str) -> bytes | None:
        if self._engine.images is None:
            return None
        model = self._engine.images.model
        return self._catalog.features.image_vector_of_content(content_hash, model)

    def _vanished(self, item: QueueItem) -> None:
        """Not where the queue saw it: renamed or deleted since, and the catalog hears
        of that from the tracker a moment later (the record moves, or goes). Until then
        it waits a little, then is tried again, a few times at most."""
        if self._catalog.queue.path_of(item.record.id) != item.record.path:
            return  # already moved (the next batch has its new path) or removed
        with self._vanished_lock:
            self._vanished_at[item.record.id] = time.monotonic()
        self._catalog.queue.retry_later(item, "cannot open: file vanished", MAX_ATTEMPTS)

    def _waiting_for_tracker(self) -> list[int]:
        now = time.monotonic()
        with self._vanished_lock:
            for file_id, when in list(self._vanished_at.items()):
                if now - when >= VANISHED_WAIT:
                    del self._vanished_at[file_id]
            return list(self._vanished_at)

    # --- the models ----------------------------------------------------------------------

    def _describe_and_store(self, prepared: list[Prepared]) -> None:
        step_aside = self._engine.foreground.step_aside  # for searches, between the steps
        needing_caption = [p for p in prepared if p.image is not None]
        # file id -> image vector, made with its caption or reused from a copy
        features = {p.item.record.id: p.image_vector for p in prepared if p.image_vector}
        if needing_caption:
            try:
                captioner = self._engine.captioner()
            except ModelError as error:
                raise CaptionerUnavailable(str(error)) from error
            images = [p.image.image for p in needing_caption if p.image]
            sharing = self._engine.captioner_giving_features(captioner)
            captions, pooled = self._caption(captioner, sharing, images)
            if pooled is not None:
                try:
                    rows = self._engine.image_features().from_pooled(pooled)
                except ModelError as error:  # captions go on; the features pass retries
                    log.error("image features left for later: %s", error)
                else:
                    for entry, row in zip(needing_caption, rows, strict=True):
                        features[entry.item.record.id] = row.tobytes()
            for entry, caption in zip(needing_caption, captions, strict=True):
                assert entry.image is not None
                entry.description = model_description(caption, captioner.name, entry.image)
        for entry in prepared:
            if entry.facets is not None and entry.description is not None:
                entry.description = with_facets(entry.description, entry.facets, self._settings)
        to_embed = [p for p in prepared if p.vector is None]
        if to_embed:
            step_aside()
            texts = [p.description.caption if p.description else "" for p in to_embed]
            vectors = self._engine.embedder.embed(texts)
            for entry, vector in zip(to_embed, vectors, strict=True):
                entry.vector = vector.tobytes()
        embedder = self._engine.embedder.name
        described = []
        for entry in prepared:
            step_aside()
            assert entry.description is not None and entry.vector is not None
            description = replace(entry.description, taken_ns=entry.facts.taken_ns,
                                  camera=entry.facts.camera)  # fmt: skip
            seq = self._catalog.queue.store_result(entry.item, description, embedder, entry.vector)
            if seq is not None:
                vector = np.frombuffer(entry.vector, dtype=np.float32)
                self._engine.text.index.add(entry.item.record.id, seq, vector)
                described.append(entry.item.record.id)
        self._store_features({id: features[id] for id in described if id in features})

    def _caption(
        self,
        captioner: Captioner,
        sharing: ClassifierCaptioner | None,
        images: list[Image.Image],
    ) -> tuple[list[str], np.ndarray | None]:
        """Captions of `images`, MODEL_STEP at a time, stepping aside for searches
        between; and their pooled features when the captioner gives them (`sharing`)."""
        captions: list[str] = []
        pooled: list[np.ndarray] = []
        for start in range(0, len(images), MODEL_STEP):
            self._engine.foreground.step_aside()
            step = images[start : start + MODEL_STEP]
            if sharing is None:
                captions += captioner.caption(step)
                continue
            found, rows = sharing.caption_with_features(step)
            captions += found
            pooled.append(rows)
        return captions, np.concatenate(pooled) if pooled else None

    def _store_features(self, vectors: dict[int, bytes]) -> None:
        """Image features computed while captioning (or a copy's): no second decode and
        pass later."""
        images = self._engine.images
        if not vectors or images is None:
            return
        for file_id, seq in self._catalog.features.store_features_of_described(
            images.model, [*vectors.items()]
        ):
            images.index.add(file_id, seq, np.frombuffer(vectors[file_id], dtype=np.float32))

    def maybe_rebuild(self, count_dead: bool = False) -> None:
        """Start a rebuild of the indexes that need one. Their dead vectors are counted
        when `count_dead`, else at most every DEAD_VECTORS_CHECK seconds."""
        if self._rebuilder is not None and self._rebuilder.is_alive():
            return
        now = time.monotonic()
        if now >= self._dead_vectors_check:
            count_dead, self._dead_vectors_check = True, now + DEAD_VECTORS_CHECK
        spaces = [self._engine.text, self._engine.images]
        indexes = [space.index for space in spaces if space is not None]
        due = [index for index in indexes if index.needs_rebuild(self._catalog, count_dead)]
        if due:
            self._rebuilder = threading.Thread(
                target=self._rebuild, args=(due,), name="semfs-index-rebuild", daemon=True
            )
            self._rebuilder.start()

    def _rebuild(self, indexes: list[VectorIndex]) -> None:
        for index in indexes:
            try:
                index.rebuild(self._catalog)
                self._on_indexed()
            except Exception:
                log.exception("index rebuild failed; the delta keeps serving new vectors")
