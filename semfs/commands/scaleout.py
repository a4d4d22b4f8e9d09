"""Bulk ingest on a Ray cluster: `semfs index STORE --engine ray`.

Decode, caption (with the image features, from the same pass) and embed run in Ray
Data, in a pool of actors that each load the models once (the expensive part:
model-holding actors, not one task per image). The driver, this process, is the only
writer: it takes the queue from the catalog, sends the paths out, and stores what comes
back into the same catalog and index as the single-process path, through the same calls
(`store_result`, the index's delta and rebuild). So a store indexed on a cluster mounts
and searches like any other, and an interrupted run resumes from the durable queue.

On a real cluster every node needs semfs installed and the store at the same path
(shared storage); docs/scale-out.md says how, and what stops fitting one machine.

Ray talks a lot on the terminal: its loggers, its C++ core (notices and errors written
straight to the process's stderr), the workers' output it forwards. All of it goes to
STORE/.semfs/ray.log (the last run's) instead, at the file-descriptor level, because
much of it never passes through Python; `--debug` leaves it on the terminal.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from tqdm import tqdm

from semfs.catalog.database import Catalog, Description, QueueItem
from semfs.config import Settings, private_opener
from semfs.errors import QuietError
from semfs.ingest.descriptions import model_description, user_caption, users_description
from semfs.ingest.facets import compute_facets, with_facets
from semfs.ingest.prepare import ready_for_bulk_ingest
from semfs.ml.imaging import BadImage, decode, read_facts
from semfs.search.engine import Engine
from semfs.store.backing import BackingStore

log = logging.getLogger(__name__)

WINDOW = 2_000  # queued images handed to Ray at a time (bounds the driver's memory)
RAY_LOG_NAME = "ray.log"  # in STORE/.semfs: what Ray said during the last run


class Describer:
    """A Ray actor: the captioner and embedder, loaded once, describing batches of
    images read from the shared store. Returns one row per image: the description and
    vector, or the reason it failed."""

    def __init__(
        self,
        store: str,
        captioner: str,
        embedder: str,
        max_pixels: int,
        max_full_decode_pixels: int,
        image_features: str,
        image_feature_dimensions: int,
        facet_modes: dict[str, str] | None = None,
    ) -> None:
        from semfs.ml.captioner import giving_features, make_captioner
        from semfs.ml.embedder import make_embedder
        from semfs.ml.image_features import ImageFeatures

        self._store = Path(store)
        self._captioner = make_captioner(captioner)
        self._with_features = giving_features(self._captioner, image_features)
        if self._with_features:  # the same network: no second copy is loaded
            self._features = ImageFeatures(image_features, image_feature_dimensions)
        self._embedder = make_embedder(embedder)
        self._limits = (max_pixels, max_full_decode_pixels)
        modes: dict[str, Any] = facet_modes or {}
        self._settings = Settings(store=self._store, **modes)  # for the facets

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        rows = [self._read(path) for path in batch["path"]]
        to_caption = [row for row in rows if "image" in row]
        if to_caption:
            decoded = [row.pop("image") for row in to_caption]
            images = [image.image for image in decoded]
            if self._with_features:  # the image features from the same pass
                captions, pooled = self._with_features.caption_with_features(images)
                features = self._features.from_pooled(pooled)
                for row, vector in zip(to_caption, features, strict=True):
                    row["image_vector"] = vector.tobytes()
            else:
                captions = self._captioner.caption(images)
            for row, caption, image in zip(to_caption, captions, decoded, strict=True):
                row["description"] = model_description(caption, self._captioner.name, image)
        for row in rows:
            if "description" in row:  # the facets' words, keywords and tokens (as ingest)
                row["description"] = with_facets(row["description"], row["facets"], self._settings)
        described = [row for row in rows if "description" in row]
        if described:
            vectors = self._embedder.embed([row["description"].caption for row in described])
            for row, vector in zip(described, vectors, strict=True):
                row["vector"] = vector.astype(np.float32).tobytes()
        return _columns(batch["id"], rows)

    def _read(self, path: str) -> dict[str, Any]:
        try:
            with open(self._store / path, "rb") as file:
                facts = read_facts(file)
                given = user_caption(file.fileno(), os.fsencode(path))
                if given is not None:
                    facets = compute_facets(self._settings, None, facts)
                    return {"description": users_description(given), "facts": facts,
                            "facets": facets}  # fmt: skip
                image = decode(file, *self._limits)
        except BadImage as error:
            return {"error": str(error)}
        except OSError as error:
            return {"error": f"cannot read: {os.strerror(error.errno or 0)}"}
        facets = compute_facets(self._settings, image.image, facts)
        return {"image": image, "facts": facts, "facets": facets}  # a stored description is added


def _columns(ids: Any, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Rows as the columns Ray Data moves (Arrow): plain values only."""
    columns: dict[str, list[Any]] = {name: [] for name in (
        "id", "error", "caption", "source", "captioner", "keywords", "taken_ns", "camera",
        "facets", "vector", "image_vector",
    )}  # fmt: skip
    for file_id, row in zip(ids, rows, strict=True):
        description, facts = row.get("description"), row.get("facts")
        columns["id"].append(int(file_id))
        columns["error"].append(row.get("error", ""))
        columns["caption"].append(description.caption if description else "")
        columns["source"].append(description.source if description else "")
        columns["captioner"].append(description.captioner if description else "")
        columns["keywords"].append(list(description.keywords) if description else [])
        columns["taken_ns"].append(facts.taken_ns if facts else None)
        columns["camera"].append(facts.camera if facts else None)
        columns["facets"].append(list(description.facets) if description else [])
        columns["vector"].append(row.get("vector", b""))
        columns["image_vector"].append(row.get("image_vector", b""))
    return columns


def index_with_ray(
    settings: Settings, progress: bool, address: str | None, workers: int, debug: bool = False
) -> tuple[int, int]:
    """Ingest every queued image of the store (already locked by the caller) on Ray.
    Returns (images stored, images failed). Ray's own output goes to ray.log unless
    `debug`."""
    try:
        import ray
    except ImportError:
        raise QuietError("--engine ray needs Ray: pip install 'ray[data]'") from None
    catalog = Catalog.open(settings.catalog_path)
    store = BackingStore(os.fsencode(settings.store))
    try:
        engine = ready_for_bulk_ingest(settings, catalog, store)
        stored = failed = 0
        changed: set[int] = set()  # changed while described: queued anew, left for later
        with _ray_output(settings.state_dir / RAY_LOG_NAME, debug) as terminal:
            _start_ray(ray, address, workers)
            try:
                with tqdm(total=catalog.stats().queued, unit="image", desc="indexing (ray)",
                          disable=not progress, smoothing=0.1, file=terminal) as bar:  # fmt: skip
                    for item, row in _describe_queue(ray, settings, catalog, workers, changed):
                        outcome = _store(engine, catalog, item, row)
                        stored += outcome == "stored"
                        failed += outcome == "failed"
                        if outcome == "changed":
                            changed.add(item.record.id)
                        bar.update(1)
            except ray.exceptions.RayError as error:
                # e.g. a captioner the workers cannot load; what was not stored stays
                # queued for the next run.
                raise QuietError(
                    f"ingest on Ray stopped: {_first_line(error)}"
                    + ("" if debug else f" (Ray's log: {settings.state_dir / RAY_LOG_NAME})")
                ) from None
            finally:
                ray.shutdown()
        for space in (engine.text, engine.images):
            if space is not None and space.index.needs_rebuild(catalog):
                space.index.rebuild(catalog)
        return stored, failed
    finally:
        store.close()
        catalog.close()


def _first_line(error: BaseException) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


@contextlib.contextmanager
def _ray_output(log_path: Path, debug: bool) -> Iterator[TextIO]:
    """While Ray runs, this process's stdout and stderr (file descriptors 1 and 2, which
    Ray's C++ core and the processes it starts write to as well) are `log_path`; yields
    the terminal's stderr, for the progress bar. With `debug`, nothing moves."""
    if debug:
        yield sys.stderr
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with (
            open(log_path, "w", opener=private_opener) as log,
            os.fdopen(os.dup(saved[1]), "w") as terminal,
        ):
            started = datetime.datetime.now().isoformat(timespec="seconds")
            log.write(f"semfs index --engine ray, {started}: Ray's output (--debug shows it)\n")
            log.flush()
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                yield terminal
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        os.close(saved[0])
        os.close(saved[1])


def _start_ray(ray: Any, address: str | None, workers: int) -> None:
    # Ray's loggers and the workers' output, forwarded: wherever `_ray_output` sent
    # stderr (ray.log, or the terminal with --debug).
    where = {"address": address} if address else {"num_cpus": workers, "include_dashboard": False}
    ray.init(**where, log_to_driver=True, logging_level=logging.INFO)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours counts images stored
    context.verbose_stats_logs = False


def _describe_queue(
    ray: Any, settings: Settings, catalog: Catalog, workers: int, skip: set[int]
) -> Iterator[tuple[QueueItem, dict[str, Any]]]:
    """Windows of the queue, described on Ray; `skip` grows with the images that
    changed while described (the next `semfs index` takes them)."""
    while items := catalog.queue.queue_items(WINDOW, skip=skip):
        by_id = {item.record.id: item for item in items}
        dataset = ray.data.from_items(
            [{"id": item.record.id, "path": os.fsdecode(item.record.path)} for item in items]
        )
        described = dataset.map_batches(
            Describer,
            fn_constructor_kwargs={
                "store": str(settings.store), "captioner": settings.captioner,
                "embedder": settings.embedder, "max_pixels": settings.max_image_pixels,
                "max_full_decode_pixels": settings.max_full_decode_pixels,
                "image_features": settings.image_features,
                "image_feature_dimensions": settings.image_feature_dimensions,
                "facet_modes": {name: getattr(settings, name)
                                for name in ("facet_colours", "facet_time", "facet_place")},
            },
            batch_size=settings.ingest_batch,
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=1,
        )  # fmt: skip
        for row in described.iter_rows():
            yield by_id[int(row["id"])], row


def _store(engine: Engine, catalog: Catalog, item: QueueItem, row: dict[str, Any]) -> str:
    """Store one image's outcome: "stored", "failed" (a bad image, with its reason), or
    "changed" (the file changed meanwhile; its new version stays queued)."""
    if row["error"]:
        return "failed" if catalog.queue.fail(item, str(row["error"])) else "changed"
    description = Description(
        str(row["caption"]), str(row["source"]), str(row["captioner"]),
        [str(word) for word in row["keywords"]], row["taken_ns"], row["camera"],
        [str(token) for token in row["facets"]],
    )  # fmt: skip
    vector = bytes(row["vector"])
    seq = catalog.queue.store_result(item, description, engine.embedder.name, vector)
    if seq is None:
        return "changed"
    engine.text.index.add(item.record.id, seq, np.frombuffer(vector, dtype=np.float32))
    image_vector = bytes(row["image_vector"])
    if image_vector and engine.images is not None:
        for file_id, image_seq in catalog.features.store_features_of_described(
            engine.images.model, [(item.record.id, image_vector)]
        ):
            engine.images.index.add(file_id, image_seq, np.frombuffer(image_vector, np.float32))
    return "stored"
