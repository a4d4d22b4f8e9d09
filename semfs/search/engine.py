"""The search engine of one store: its models and its search spaces, loaded once, lazily.

Two search spaces (search/space.py), built the same way: `text`, the captions' vectors
by the embedder, and `images`, the image features for search by example (None when the
image_features setting is empty).

A mount answers `ls` at once; the embedder and index load in a background thread, and a
search that arrives first waits for them (bounded by `model_wait`). The captioner loads
only when ingest first needs it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from semfs import heap
from semfs.catalog.database import Catalog
from semfs.config import Settings
from semfs.errors import ModelError
from semfs.ml.calibration import default_cut, example_cut
from semfs.ml.captioner import Captioner, ClassifierCaptioner, giving_features, make_captioner
from semfs.ml.embedder import Embedder, QueryCache, make_embedder, query_embedder
from semfs.ml.feature_projection import POOLED_DIMENSIONS
from semfs.ml.image_features import ImageFeatures, check_dimensions, image_features_name
from semfs.ml.lite_classifier import LITE_MODELS, release_shared
from semfs.search.foreground import Foreground
from semfs.search.index import IndexOptions, VectorIndex
from semfs.search.relevance import NounCut
from semfs.search.searcher import Searcher
from semfs.search.space import SearchSpace

log = logging.getLogger(__name__)

REEMBED_BATCH = 256


class NotReady(Exception):
    """The models did not load within the wait; the message says why."""


class LoadFailed(NotReady):
    """The models cannot load (a bad model name, a missing package)."""


class Engine:
    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        self.settings = settings
        self.catalog = catalog
        self._ready = threading.Event()
        self._load_error: BaseException | None = None
        self._captioner: Captioner | None = None  # GUARDED_BY(_captioner_lock)
        self._captioner_lock = threading.Lock()
        self._image_features: ImageFeatures | None = None  # GUARDED_BY(_captioner_lock)
        self._loader: threading.Thread | None = None  # loads the models in the background
        self._closing = False
        self.foreground = Foreground()  # searches in flight, which background work yields to
        # Set by load():
        self.embedder: Embedder
        self.text: SearchSpace
        self.images: SearchSpace | None = None  # None: search by example is off

    def changed(self) -> None:
        """The catalog changed (a file removed or moved): cached results are stale."""
        if self._ready.is_set() and self._load_error is None:
            self.text.index.changed()
            if self.images is not None:
                self.images.index.changed()

    def start_loading(self) -> None:
        self._loader = threading.Thread(target=self._load_logged, name="semfs-models", daemon=True)
        self._loader.start()

    def close(self, timeout: float = 0.0) -> None:
        """The mount is going away. A load still running in the background is waited for
        up to `timeout`: a thread left inside onnxruntime when the interpreter exits
        aborts the process ("terminate called without an active exception"). One that
        fails meanwhile (its thread pools refuse work at shutdown) is no error."""
        self._closing = True
        if self._loader is not None:
            self._loader.join(timeout)

    def _load_logged(self) -> None:
        try:
            self.load()
        except BaseException as error:  # reported to every search that waits
            if self._closing:
                log.debug("model loading cut short by unmount: %s", error)
            else:
                log.exception("loading the embedder or index failed")
            self._load_error = error
            self._ready.set()

    def load(self, read_only: bool = False) -> None:
        """Load the embedder and index. `read_only`: another process (a mount) owns the
        index directory; do not tidy it."""
        started = time.monotonic()
        _quiet_model_libraries()
        if self.settings.torch_threads > 0:
            import torch

            torch.set_num_threads(self.settings.torch_threads)
        self.embedder = make_embedder(self.settings.embedder)
        index = self._load_index(
            self.settings.index_dir, self.embedder.name, self.embedder.dimensions, read_only
        )
        self.text = SearchSpace(
            model=self.embedder.name,
            index=index,
            searcher=Searcher(
                self.catalog.reads,
                index,
                QueryCache(
                    query_embedder(self.embedder, self.settings.query_encoder),
                    self.settings.query_cache,
                ),
                self.embedder.name,
                noun_cut=self._noun_cut(),
            ),
            max_distance=text_cut(self.settings),
        )
        self.load_image_index(read_only)
        log.info("embedder %s and index ready in %.1f s",
                 self.embedder.name, time.monotonic() - started)  # fmt: skip
        self._ready.set()

    def _noun_cut(self) -> NounCut | None:
        """The per-query relevance cut (search/relevance.py), if set and if the captions
        are the offline captioner's labels, whose tags it weighs; else None: the fixed cut."""
        if self.settings.relevance_cut != "nouns":
            return None
        if not self.settings.captioner.startswith("classifier"):
            log.info("relevance_cut = nouns needs the classifier captioner: the fixed cut decides")
            return None
        from semfs.ml.query_nouns import LabelEvidence

        try:
            evidence = LabelEvidence()
        except ModelError as error:
            log.warning("relevance cut fixed, not per query: %s", error)
            return None
        return NounCut(evidence.of, self.catalog.reads.carrying)

    def load_image_index(self, read_only: bool = False) -> None:
        """The index of image features (search by example), if the setting asks for it."""
        model = self.settings.image_features
        if not model:
            return
        if model not in LITE_MODELS:
            raise ModelError(f"unknown image_features {model!r}; known: {sorted(LITE_MODELS)}")
        check_dimensions(self.settings.image_feature_dimensions)
        name = self.image_model
        index = self._load_index(
            self.settings.image_index_dir,
            name,
            self.settings.image_feature_dimensions,
            read_only,
            table="image_vectors",
        )
        cut = self.settings.example_max_distance
        self.images = SearchSpace(
            model=name,
            index=index,
            searcher=Searcher(self.catalog.reads, index, None, name, "image_vectors"),
            max_distance=example_cut(name) if cut is None else cut,
        )

    def cuts_in_force(self) -> dict[str, float | None]:
        """The relevance cuts searches apply, by setting name: the loaded spaces' once
        loaded, else what loading will give them."""
        if not self._ready.is_set() or self._load_error is not None:
            return relevance_cuts(self.settings)
        images = self.images.max_distance if self.images is not None else None
        return {"max_distance": self.text.max_distance, "example_max_distance": images}

    def _load_index(
        self, directory: Path, model: str, dimensions: int, read_only: bool, table: str = "vectors"
    ) -> VectorIndex:
        index = VectorIndex(
            directory,
            model,
            dimensions,
            index_options(self.settings),
            rebuild_threshold=self.settings.rebuild_threshold,
            table=table,
        )
        index.load(self.catalog, tidy=not read_only)
        return index

    @property
    def image_model(self) -> str:
        """The name image vectors of the current image features model carry."""
        return image_features_name(
            self.settings.image_features, self.settings.image_feature_dimensions
        )

    def image_features(self) -> ImageFeatures:
        """The image features model, loaded on first use (ingest, an example copied in)."""
        with self._captioner_lock:
            if self._image_features is None:
                try:
                    self._image_features = ImageFeatures(
                        self.settings.image_features, self.settings.image_feature_dimensions
                    )
                except ModelError:
                    raise
                except Exception as error:  # loading is never an image's fault
                    raise ModelError(f"{self.settings.image_features}: {error}") from error
            return self._image_features

    def captioner_giving_features(self, captioner: Captioner) -> ClassifierCaptioner | None:
        """`captioner`, if it computes the image features as it captions (the classifier
        network they share): ingest then stores both from one pass."""
        if self.images is None:
            return None
        return giving_features(captioner, self.settings.image_features)

    def record_models(self) -> None:
        """Write which embedder made the vectors (and their size) into the catalog, for
        `semfs status` and `semfs check`. Apart from `load` so that a catalog refusing
        writes (a full disk) delays it instead of failing the load."""
        self.catalog.set_meta("embedder", self.embedder.name)
        self.catalog.set_meta("dimensions", str(self.embedder.dimensions))

    def wait_ready(self, timeout: float | None = None) -> SearchSpace:
        """The text search space, once loaded (waiting up to `timeout`, or model_wait)."""
        wait = self.settings.model_wait if timeout is None else timeout
        if not self._ready.wait(wait):
            raise NotReady(f"the embedder is still loading after {wait:.0f} s")
        if self._load_error is not None:
            raise LoadFailed(f"the embedder failed to load: {self._load_error}")
        return self.text

    def captioner(self) -> Captioner:
        with self._captioner_lock:
            if self._captioner is None:
                started = time.monotonic()
                try:
                    captioner = make_captioner(self.settings.captioner)
                except ModelError:
                    raise
                except Exception as error:  # loading is never an image's fault
                    raise ModelError(f"{self.settings.captioner}: {error}") from error
                # Recorded first: if the catalog refuses (a full disk), the next call
                # tries again rather than leave it unrecorded.
                self.catalog.set_meta("captioner", captioner.name)
                self._captioner = captioner
                log.info("captioner %s ready in %.1f s",
                         captioner.name, time.monotonic() - started)  # fmt: skip
            return self._captioner

    def release_captioner(self) -> bool:
        """Let the captioner's memory go (low-memory profile, when ingest is idle); the
        next image loads it again. True if one was loaded."""
        with self._captioner_lock:
            released = self._captioner is not None or self._image_features is not None
            self._captioner = self._image_features = None
            for model in LITE_MODELS:  # the network they shared
                release_shared(model)
        if released:
            heap.collect_all()  # the model's arrays go now (frozen ones too: heap.py)
            log.info("captioner released while idle")
        return released

    def convert_image_features(self, should_stop: Callable[[], bool] = lambda: False) -> int:
        """Convert the image vectors (and copied-in examples) stored before the features
        were reduced (feature_projection) instead of computing them again: reducing the
        stored unit rows gives what the model computes now, without decoding any image.
        Returns how many images were converted."""
        if self.images is None or self.settings.image_feature_dimensions == POOLED_DIMENSIONS:
            return 0
        old = image_features_name(self.settings.image_features, POOLED_DIMENSIONS)
        try:
            done = self._convert_image_vectors(old, should_stop)
            examples = self.catalog.features.convert_examples(
                old, self.image_model, self._reduce_one
            )
        except ModelError as error:  # computed again instead, once the model loads
            log.error("cannot convert the stored image features: %s", error)
            return 0
        if done:
            log.info("converted the image features of %d images (and %d examples) to %s",
                     done, examples, self.image_model)  # fmt: skip
            if not self.images.index.rebuild(self.catalog):  # one base, not a huge delta
                self.images.index.load(self.catalog)
        return done

    def _convert_image_vectors(self, old: str, should_stop: Callable[[], bool]) -> int:
        done = 0
        while not should_stop() and (
            batch := self.catalog.features.image_vectors_by(old, REEMBED_BATCH)
        ):
            features = self.image_features()
            stored = np.stack([np.frombuffer(vector, dtype=np.float32) for _, vector in batch])
            reduced = features.from_pooled(stored)
            rows = [
                (file_id, row.tobytes()) for (file_id, _), row in zip(batch, reduced, strict=True)
            ]
            converted = len(self.catalog.features.convert_image_vectors(old, features.name, rows))
            done += converted
            if converted == 0:
                break  # every one changed under us: ingest is writing new features
        return done

    def _reduce_one(self, vector: bytes) -> bytes:
        row = np.frombuffer(vector, dtype=np.float32)[None, :]
        reduced: bytes = self.image_features().from_pooled(row)[0].tobytes()
        return reduced

    def reembed(self, should_stop: Callable[[], bool] = lambda: False) -> int:
        """Give every stored caption a vector by the current embedder (after the
        embedder was switched); captions are kept. Returns how many were embedded."""
        done = 0
        while not should_stop() and (
            batch := self.catalog.queue.captions_to_embed(self.embedder.name, REEMBED_BATCH)
        ):
            vectors = self.embedder.embed([caption for _, caption in batch])
            rows = [
                (file_id, caption, vector.tobytes())
                for (file_id, caption), vector in zip(batch, vectors, strict=True)
            ]
            stored = self.catalog.queue.store_vectors(self.embedder.name, rows)
            done += stored
            if stored == 0:
                break  # every caption changed under us: ingest is writing new vectors
        if done:
            self.text.index.load(self.catalog)  # the new vectors join the delta
            log.info("re-embedded %d stored captions with %s", done, self.embedder.name)
        return done


def index_options(settings: Settings) -> IndexOptions:
    return IndexOptions(engine=settings.index_engine, trees=settings.index_trees,
                        search_k=settings.index_search_k, nprobe=settings.index_nprobe)  # fmt: skip


def text_cut(settings: Settings) -> float:
    """The text search's relevance cut: the setting, else the one calibrated for the
    captioner and embedder."""
    cut = settings.max_distance
    return default_cut(settings.captioner, settings.embedder) if cut is None else cut


def relevance_cuts(settings: Settings) -> dict[str, float | None]:
    """The cuts a mount with `settings` applies, by setting name (`semfs config`); no
    example cut when search by example is off."""
    example = settings.example_max_distance
    if example is None and settings.image_features:
        name = image_features_name(settings.image_features, settings.image_feature_dimensions)
        example = example_cut(name)
    return {"max_distance": text_cut(settings), "example_max_distance": example}


def _quiet_model_libraries() -> None:
    """No progress bars in the daemon's log from loading weights."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
