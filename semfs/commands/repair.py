"""`semfs check --repair`: fix what `semfs.commands.check` found, with the store unmounted.

The store's files are the truth; everything else follows them:
- a damaged catalog is moved aside (kept, for a post-mortem) and a new one is made from
  the rows that can still be read, then completed from the store;
- the catalog is reconciled with the store (the same scan a mount runs);
- records in impossible states are queued again, so ingest derives them anew;
- an index that disagrees with the catalog is rebuilt from the catalog's vectors.
Nothing in the store is touched.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import time
from pathlib import Path

from semfs.catalog.database import Catalog
from semfs.catalog.reconcile import reconcile
from semfs.commands.check import (
    IMAGE_INDEX_KINDS,
    INDEX_KINDS,
    RECORD_CHECKS,
    WRONG_SIZE_QUERY,
    CheckReport,
    check_store,
)
from semfs.config import Settings
from semfs.daemon.mount import hold_store_lock, read_lock_holder
from semfs.errors import QuietError
from semfs.ml.image_features import image_features_name
from semfs.search.bases import remove_base
from semfs.search.engine import index_options
from semfs.search.index import VectorIndex
from semfs.store.backing import BackingStore

log = logging.getLogger(__name__)

# What a damaged catalog's rows are copied back by, parents before children.
SALVAGED = {
    "meta": "key, value",
    "files": "id, dir, name, size, mtime_ns, content_hash, state, error",
    "ingest_queue": "file_id, enqueued_ns, attempts",
    "descriptions": "file_id, caption, source, captioner, keywords",
    "vectors": "seq, file_id, embedder, vector",
    "saved_queries": "query, created_ns",
    "examples": "name, file_id, embedder, vector, created_ns",
}


def repair_store(settings: Settings) -> tuple[CheckReport, list[str], CheckReport]:
    """(findings before, what was done, findings after)."""
    holder = read_lock_holder(settings)
    if holder is not None:
        raise QuietError(
            f"store {settings.store} is in use at {holder.mountpoint} (pid {holder.pid}): "
            "unmount it first (`semfs unmount MOUNTPOINT`)"
        )
    with hold_store_lock(settings, "being repaired by semfs check"):
        before = check_store(settings)
        actions = _repair(settings, before) if not before.consistent else []
        return before, actions, check_store(settings)


def _repair(settings: Settings, found: CheckReport) -> list[str]:
    actions: list[str] = []
    salvaged = "catalog-damaged" in found.kinds()
    if salvaged:
        actions.append(_salvage(settings.catalog_path))
        # Image features are not salvaged (the descriptions copied back queue them all
        # again), so their index, numbered by the old catalog's vectors, goes too.
        shutil.rmtree(settings.image_index_dir, ignore_errors=True)
        actions.append("image index removed: image features are computed again")
    catalog = Catalog.open(settings.catalog_path)
    try:
        store = BackingStore(os.fsencode(settings.store))
        try:
            changes = reconcile(settings, catalog, store).summary()
            actions.append(f"catalog brought in line with the store: {changes}")
        finally:
            store.close()
        requeued = _requeue_impossible_records(catalog)
        if requeued:
            actions.append(f"{requeued} records in impossible states queued to be ingested again")
        if salvaged or found.kinds() & INDEX_KINDS:
            actions.append(_rebuild_index(settings, catalog))
        if found.kinds() & IMAGE_INDEX_KINDS:
            actions.append(_rebuild_image_index(settings, catalog))
    finally:
        catalog.close()
    return actions


def _salvage(path: Path) -> str:
    """Move the damaged catalog aside and copy what can be read into a new one."""
    damaged = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):  # the WAL moves along: its name follows the db's
        if Path(f"{path}{suffix}").exists():
            os.replace(f"{path}{suffix}", f"{damaged}{suffix}")
    Catalog.open(path).close()  # a new, empty catalog of the current schema
    copied: dict[str, int] = {}
    source = sqlite3.connect(f"file:{damaged}?mode=ro", uri=True)
    target = sqlite3.connect(path, isolation_level=None)
    try:
        target.execute("PRAGMA foreign_keys = ON")
        target.execute("BEGIN")
        for table, columns in SALVAGED.items():
            copied[table] = _copy_rows(source, target, table, columns)
        target.execute("COMMIT")
    finally:
        source.close()
        target.close()
    counts = ", ".join(f"{count} {table}" for table, count in copied.items())
    return f"damaged catalog kept as {damaged.name}; rows read back from it: {counts}"


def _copy_rows(
    source: sqlite3.Connection, target: sqlite3.Connection, table: str, columns: str
) -> int:
    marks = ", ".join("?" * len(columns.split(",")))
    insert = f"INSERT OR REPLACE INTO {table} ({columns}) VALUES ({marks})"
    copied = 0
    try:
        for row in source.execute(f"SELECT {columns} FROM {table}"):
            try:
                target.execute(insert, row)
                copied += 1
            except sqlite3.IntegrityError:  # its file's row was lost: derived anew later
                continue
    except sqlite3.DatabaseError as error:  # the rest of the table is unreadable
        log.warning("salvage: %s: stopped after %d rows: %s", table, copied, error)
    return copied


def _requeue_impossible_records(catalog: Catalog) -> int:
    reader = catalog.open_reader()
    try:
        ids = {row[0] for _, _, query in RECORD_CHECKS for row in reader.execute(query)}
        dimensions = catalog.get_meta("dimensions")
        if dimensions is not None:
            ids |= {row[0] for row in reader.execute(WRONG_SIZE_QUERY, (4 * int(dimensions),))}
    finally:
        reader.close()
    catalog.queue.requeue_ids(sorted(ids))
    return len(ids)


def _rebuild_index(settings: Settings, catalog: Catalog) -> str:
    embedder, dimensions = catalog.get_meta("embedder"), catalog.get_meta("dimensions")
    if embedder is None or dimensions is None:
        for leftover in settings.index_dir.glob("*.tmp"):
            remove_base(leftover)
        return "half-written index files removed (nothing was embedded yet)"
    settings.index_dir.mkdir(parents=True, exist_ok=True)
    index = VectorIndex(settings.index_dir, embedder, int(dimensions), index_options(settings))
    index.rebuild(catalog)  # also removes older bases and half-written builds
    return f"index rebuilt from the catalog's {embedder} vectors"


def _rebuild_image_index(settings: Settings, catalog: Catalog) -> str:
    dimensions = settings.image_feature_dimensions
    model = image_features_name(settings.image_features, dimensions)
    settings.image_index_dir.mkdir(parents=True, exist_ok=True)
    index = VectorIndex(settings.image_index_dir, model, dimensions, index_options(settings),
                        table="image_vectors")  # fmt: skip
    index.rebuild(catalog)  # also removes older bases and half-written builds
    return f"image index rebuilt from the catalog's {model} vectors"
