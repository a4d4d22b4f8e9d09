"""`semfs index` and `semfs search`: the ingest and ranking of a mount, without one."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Never

from tqdm import tqdm

from semfs.catalog.database import Catalog
from semfs.commands.scaleout import index_with_ray
from semfs.config import CAPTION_XATTR, Settings
from semfs.daemon.mount import hold_store_lock, read_lock_holder
from semfs.errors import ModelError, QuietError
from semfs.ingest.features import compute_features
from semfs.ingest.prepare import ready_for_bulk_ingest
from semfs.ingest.worker import CaptionerUnavailable, IngestWorker
from semfs.ml.feature_projection import POOLED_DIMENSIONS
from semfs.ml.image_features import image_features_name
from semfs.ml.imaging import BadImage, decode
from semfs.ml.triplets import triplets
from semfs.search.engine import Engine
from semfs.search.query import QuerySyntaxError, parse_example_modifiers, parse_query
from semfs.search.searcher import Hit
from semfs.store.backing import BackingStore


@dataclass(frozen=True)
class RayOptions:
    address: str | None  # None: a local cluster of `workers` processes
    workers: int  # actors, each holding the models
    debug: bool = False  # Ray's own output on the terminal (else in STORE/.semfs/ray.log)


@dataclass(frozen=True)
class IndexSummary:
    indexed: int
    failed: int
    queued: int
    failures: list[tuple[bytes, str]]

    def text(self) -> str:
        lines = [f"indexed {self.indexed}, failed {self.failed}, still queued {self.queued}"]
        lines += [f"  failed: {os.fsdecode(path)}: {reason}" for path, reason in self.failures]
        return "\n".join(lines)


def index_store(
    settings: Settings, progress: bool = True, ray: RayOptions | None = None
) -> IndexSummary:
    """Catalog and ingest the whole store; resumable (the queue is durable). While the
    store is mounted, its daemon does the work and this follows its progress. With
    `ray`, the models run on a Ray cluster (semfs/commands/scaleout.py)."""
    holder = read_lock_holder(settings)
    if holder is not None and ray is not None:
        raise QuietError(
            f"store {settings.store} is in use at {holder.mountpoint} (pid {holder.pid}): "
            "unmount it to index it on Ray (the catalog has one writer)"
        )
    if ray is not None:
        with hold_store_lock(settings, "being indexed by semfs index --engine ray"):
            index_with_ray(settings, progress, ray.address, ray.workers, ray.debug)
            catalog = Catalog.open(settings.catalog_path)
            store = BackingStore(os.fsencode(settings.store))
            try:
                _features_here(settings, catalog, store, progress)
                return _summary(catalog)
            finally:
                store.close()
                catalog.close()
    if holder is not None:
        if not holder.search_dir:
            raise QuietError(f"store {settings.store} is {holder.mountpoint} (pid {holder.pid})")
        print(
            f"semfs: {settings.store} is mounted at {holder.mountpoint} (pid {holder.pid}): "
            f"its daemon ingests, with the models it was mounted with; following it",
            file=sys.stderr,
        )
        return _follow_daemon(settings, progress)
    with hold_store_lock(settings, "being indexed by semfs index"):
        catalog = Catalog.open(settings.catalog_path)
        store = BackingStore(os.fsencode(settings.store))
        try:
            engine = ready_for_bulk_ingest(settings, catalog, store)
            worker = IngestWorker(engine, store)
            with _bar(catalog.stats().queued, progress) as bar:
                try:
                    while taken := worker.run_batch():
                        bar.update(taken)
                except CaptionerUnavailable as error:
                    raise QuietError(f"cannot caption: {error}") from None
            _compute_all_features(engine, store, progress)
            worker.maybe_rebuild(count_dead=True)
            worker.wait_for_rebuild()
            return _summary(catalog)
        finally:
            store.close()
            catalog.close()


def _compute_all_features(engine: Engine, store: BackingStore, progress: bool) -> None:
    """The image features of every indexed image that waits for them (search by example)."""
    if engine.images is None:
        return
    waiting = engine.catalog.features.feature_counts()[1]
    with tqdm(total=waiting, unit="image", desc="image features", disable=not progress) as bar:
        try:
            while taken := compute_features(engine, store):
                bar.update(taken)
        except ModelError as error:
            raise QuietError(f"cannot compute image features: {error}") from None


def _features_here(
    settings: Settings, catalog: Catalog, store: BackingStore, progress: bool
) -> None:
    """Image features after a Ray run, in this process, for the images whose features
    did not come with their captions (captioned by a person, or by a transformers model)."""
    engine = Engine(settings, catalog)
    engine.load_image_index()
    if engine.images is None:
        return
    engine.convert_image_features()
    catalog.features.requeue_features_not_by(engine.images.model)
    _compute_all_features(engine, store, progress)
    if engine.images.index.needs_rebuild(catalog):
        engine.images.index.rebuild(catalog)


def search_image_store(
    settings: Settings, image: Path, k: int | None, modifiers: str = ""
) -> list[dict[str, object]]:
    """The stored images that look most like `image`, best first: the ranking of
    MOUNT/similar/<image modifiers>/. Computed here, from the catalog and the image index
    (which a mount may be writing meanwhile: it is only read)."""
    if not settings.image_features:
        raise QuietError("search by example is off: the image_features setting is empty")
    try:
        parsed = parse_example_modifiers(modifiers)
    except QuerySyntaxError as error:
        raise QuietError(f"modifiers {modifiers!r}: {error}") from None
    if not settings.catalog_path.exists():
        raise QuietError(f"{settings.store} has no catalog yet: run semfs index or mount it")
    try:
        with open(image, "rb") as file:
            decoded = decode(file, settings.max_image_pixels, settings.max_full_decode_pixels)
    except OSError as error:
        raise QuietError(f"cannot read {image}: {error.strerror}") from None
    except BadImage as error:
        raise QuietError(f"{image}: {error}") from None
    catalog = Catalog.open(settings.catalog_path)
    try:
        engine = Engine(settings, catalog)
        engine.load_image_index(read_only=True)
        images = engine.images
        assert images is not None
        vector = engine.image_features().features([decoded.image])[0]
        hits = images.searcher.search_example(
            vector, parsed, k or settings.top_k, images.max_distance
        )
        waiting = catalog.features.feature_counts()[1]
        unreduced = image_features_name(settings.image_features, POOLED_DIMENSIONS)
        if unreduced != engine.image_model and catalog.features.image_vectors_by(unreduced, 1):
            print("semfs: this store's image features are from before they were reduced: "
                  "mount it or run semfs index to convert them", file=sys.stderr)  # fmt: skip
    except ModelError as error:
        raise QuietError(f"cannot compute image features: {error}") from None
    finally:
        catalog.close()
    if waiting:
        print(f"semfs: {waiting} images have no image features yet (mount the store or run "
              "semfs index to compute them)", file=sys.stderr)  # fmt: skip
    return [hit_record(hit) for hit in hits]


def _follow_daemon(settings: Settings, progress: bool) -> IndexSummary:
    catalog = Catalog.open(settings.catalog_path)
    try:
        total = catalog.stats().queued
        with _bar(total, progress) as bar:
            while (queued := catalog.stats().queued) > 0:
                bar.total = max(bar.total or 0, queued + bar.n)
                bar.update(max(0, (bar.total - queued) - bar.n))
                time.sleep(0.5)
            bar.update((bar.total or 0) - bar.n)
        return _summary(catalog)
    finally:
        catalog.close()


def _bar(total: int, enabled: bool) -> tqdm[Never]:
    return tqdm(total=total, unit="image", desc="indexing", disable=not enabled, smoothing=0.1)


def _summary(catalog: Catalog) -> IndexSummary:
    stats = catalog.stats()
    return IndexSummary(stats.indexed, stats.failed, stats.queued, catalog.queue.failures())


def search_store(
    settings: Settings, query: str, k: int | None, through_mount: bool = True
) -> list[dict[str, object]]:
    """The ranking of MOUNT/search/<query>/. While the store is mounted (with the same
    models and cut), it is read from the mount itself: the daemon has the models loaded
    already. Otherwise it is computed here, from the catalog and the index."""
    holder = read_lock_holder(settings) if through_mount else None
    if holder is not None and holder.search_dir and (k or settings.top_k) <= settings.top_k:
        listed = _search_through_mount(Path(holder.mountpoint) / holder.search_dir, query)
        if listed is not None:
            return listed[: k or settings.top_k]
    if not settings.catalog_path.exists():
        raise QuietError(f"{settings.store} has no catalog yet: run semfs index or mount it")
    catalog = Catalog.open(settings.catalog_path)
    try:
        engine = Engine(settings, catalog)
        engine.load(read_only=True)
        cut = engine.text.max_distance
        try:
            parsed = parse_query(" ".join(query.split()))
        except QuerySyntaxError as error:
            raise QuietError(f"query {query!r}: {error}") from None
        hits = engine.text.searcher.search_query(
            parsed, k or settings.top_k, cut if cut > 0 else math.inf
        )
    finally:
        catalog.close()
    return [hit_record(hit) for hit in hits]


def hit_record(hit: Hit) -> dict[str, object]:
    """A result as `semfs search` prints it (the same fields the view's xattrs give)."""
    return {
        "path": os.fsdecode(hit.path),
        "score": round(hit.score, 4),
        "distance": round(hit.distance, 4),
        "caption": hit.caption,
        "triplets": [list(t) for t in triplets(hit.caption)],
    }


def format_hits(hits: list[dict[str, object]], as_json: bool) -> str:
    if as_json:
        return json.dumps(hits, indent=2, ensure_ascii=False)
    if not hits:
        return "(no image matches)"
    return "\n".join(
        f"{rank:3d}. {hit['score']:.3f}  {hit['path']}  ({hit['caption']})"
        for rank, hit in enumerate(hits, start=1)
    )


def _search_through_mount(search_dir: Path, query: str) -> list[dict[str, object]] | None:
    """The listing of search_dir/<query>/ with each entry's attributes; None when the
    mount cannot answer this query (a name too long for a directory, a dead mount)."""
    directory = search_dir / query
    for _ in range(3):  # a name gone between listing and reading: the ranking moved
        try:
            names = os.listdir(directory)
        except OSError:
            return None
        hits: list[dict[str, object]] = []
        moved = False
        for name in names:
            entry = directory / name
            try:
                hits.append(
                    {
                        "path": os.fsdecode(os.getxattr(entry, "user.semfs.path")),
                        "score": float(os.getxattr(entry, "user.semfs.score")),
                        "distance": float(os.getxattr(entry, "user.semfs.distance")),
                        "caption": os.getxattr(entry, CAPTION_XATTR).decode(),
                        "triplets": json.loads(os.getxattr(entry, "user.semfs.triplets")),
                    }
                )
            except FileNotFoundError:
                moved = True  # its rank, so its name, changed; or it was removed
            except (OSError, ValueError):
                return None
        if not moved:
            break
    return hits
