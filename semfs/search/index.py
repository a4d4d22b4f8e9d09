"""The vector index: a memory-mapped base (semfs/search/bases.py), an exact in-memory
delta, and tombstones derived from the catalog.

A base cannot take items after its build. New vectors go to the delta, searched exactly
with numpy; past a threshold a new base is built in the background from the catalog,
written to a new file, published with `os.replace` and swapped in under a lock: queries
never wait for a build.

Every vector in the catalog has a sequence number that grows with each write. A base
file is named after the highest sequence number it holds and its size, so it knows which
vectors it has. A base candidate is valid only if the catalog's current vector for that
file is no newer than the base (`seq <= base seq`); otherwise the file was deleted,
changed or re-embedded since: that is its tombstone. Delta candidates must match the
catalog's current seq exactly. The searcher checks both against the catalog
(`SearchReads.hits`).

Item ids are catalog file ids.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np

from semfs.catalog.database import Catalog
from semfs.config import make_private_dirs
from semfs.search.bases import (
    Base,
    IndexOptions,
    base_files,
    build_annoy,
    build_ivf,
    is_leftover,
    open_base,
    publish_base,
    remove_base,
    sync_base,
    training_sample,
)
from semfs.search.delta import Delta
from semfs.search.shortlist import Candidate, Shortlist, Vector

__all__ = ["Candidate", "IndexOptions", "Shortlist", "VectorIndex"]

log = logging.getLogger(__name__)

MAX_SEQ_QUERY = "SELECT coalesce(max(seq), 0) FROM {table}"
COUNT_QUERY = "SELECT count(*) FROM {table} WHERE embedder = ? AND seq <= ?"
REBUILD_QUERY = "SELECT file_id, vector FROM {table} WHERE embedder = ? AND seq <= ?"
TRAINING_VECTORS_PER_LIST = 40  # k-means sample; FAISS advises 39 to 256
# A large base is rebuilt only when the delta holds this share of it: a rebuild of 1 M
# vectors takes 73 s of a core (measured), and an exact scan of a 20,000-vector delta
# about a millisecond; rebuilding every rebuild_threshold (2,000) would never stop.
DELTA_SHARE = 50


class VectorIndex:
    def __init__(
        self,
        directory: Path,
        embedder: str,
        dimensions: int,
        options: IndexOptions | None = None,
        rebuild_threshold: int = 2_000,
        table: str = "vectors",
    ) -> None:
        self._directory = directory
        self._table = table  # the catalog table of its vectors (catalog.records.VECTOR_TABLES)
        self._embedder = embedder
        self._dimensions = dimensions
        self.options = options or IndexOptions()
        self._rebuild_threshold = rebuild_threshold
        self._lock = threading.Lock()
        self._base: Base | None = None  # GUARDED_BY(_lock); read-only once loaded
        self._base_seq = 0  # GUARDED_BY(_lock)
        self._base_items = 0  # GUARDED_BY(_lock)
        self._base_format = ""  # GUARDED_BY(_lock); "ann" or "ivf", its file's suffix
        self._delta = Delta(dimensions)  # GUARDED_BY(_lock)
        self._rebuilding = threading.Lock()  # held by the one running rebuild
        self.version = 0  # bumped by every change a search could see

    # --- loading -----------------------------------------------------------------------

    def load(self, catalog: Catalog, tidy: bool = True) -> None:
        """Open the newest base file for these dimensions and fill the delta from the
        catalog with every vector written after it. `tidy` removes older bases and
        half-written builds (only the process that builds may)."""
        make_private_dirs(self._directory)
        found = base_files(self._directory, self._dimensions)
        newest = found[-1] if found else None
        if newest is not None:
            seq, items, path = newest
            try:
                base = open_base(path, self._dimensions, items, self.options)
            except (OSError, RuntimeError, ValueError) as error:
                # Replaced by a rebuild meanwhile, or unreadable: the delta has it all.
                log.warning("index: cannot load %s (%s); searching exactly", path, error)
                newest = None
            else:
                with self._lock:
                    self._base, self._base_seq, self._base_items = base, seq, items
                    self._base_format = path.suffix[1:]
        if tidy:
            self._remove_old_files(keep=newest[2] if newest else None)
        delta = Delta(self._dimensions)
        for file_id, seq, blob in catalog.reads.vectors_since(
            self._embedder, self._base_seq, self._table
        ):
            delta.add(file_id, seq, np.frombuffer(blob, dtype=np.float32))
        with self._lock:
            self._delta = delta
            self.version += 1
        log.info("index: base holds vectors up to seq %d, %d new in the delta",
                 self._base_seq, len(delta))  # fmt: skip

    def _remove_old_files(self, keep: Path | None) -> None:
        """Older bases and half-written builds (a crash mid-rebuild leaves a .tmp)."""
        for path in self._directory.iterdir():
            if path != keep and is_leftover(path):
                remove_base(path)

    # --- changes and queries -------------------------------------------------------------

    def add(self, file_id: int, seq: int, vector: Vector) -> None:
        with self._lock:
            self._delta.add(file_id, seq, vector)
            self.version += 1

    def changed(self) -> None:
        """Something a search could see changed outside the index (a file removed)."""
        with self._lock:
            self.version += 1

    @property
    def base_seq(self) -> int:
        with self._lock:
            return self._base_seq

    @property
    def base_kind(self) -> str:
        """How the base is searched: "exact", "ivf", "annoy" or "none" (status, benches)."""
        with self._lock:
            base = self._base
        names = {"ExactBase": "exact", "IvfBase": "ivf", "AnnoyBase": "annoy"}
        return "none" if base is None else names[type(base).__name__]

    def search(self, vector: Vector, n: int) -> Shortlist:
        """The n nearest candidates of base and of delta. Some may be stale; the caller
        validates them against the catalog."""
        with self._lock:
            base, base_seq = self._base, self._base_seq
            from_delta = self._delta.search(vector, n)
        from_base = base.search(vector, n, base_seq) if base is not None else []
        return Shortlist(n, from_base, from_delta)

    # --- rebuilding ------------------------------------------------------------------------

    def needs_rebuild(self, catalog: Catalog, count_dead: bool = True) -> bool:
        """Whether a new base is due: the delta grew, the format changed, or (when
        `count_dead`: a count over the catalog's vectors, 80-100 ms at 1 M) a quarter of
        the base is dead."""
        with self._lock:
            waiting, base_seq, base_items = len(self._delta), self._base_seq, self._base_items
            base_format = self._base_format
        if waiting >= max(self._rebuild_threshold, base_items // DELTA_SHARE):
            return True
        if base_items and base_format != self.options.format_for(base_items):
            return True  # built by another index_engine (or an older semfs): build it anew
        if not count_dead:
            return False
        live_in_base, _ = catalog.reads.vector_counts(self._embedder, base_seq, self._table)
        dead = base_items - live_in_base  # deleted, changed or re-embedded since the build
        return dead >= max(self._rebuild_threshold, base_items // 4)

    def rebuild(self, catalog: Catalog) -> bool:
        """Build a new base from the catalog and swap it in. False if one is running."""
        if not self._rebuilding.acquire(blocking=False):
            return False
        try:
            self._rebuild(catalog)
            return True
        finally:
            self._rebuilding.release()

    def _rebuild(self, catalog: Catalog) -> None:
        started = time.monotonic()
        reader = catalog.open_reader()  # a long scan must not hold the shared connection
        try:
            top = reader.execute(MAX_SEQ_QUERY.format(table=self._table)).fetchone()[0]
            parameters = (self._embedder, top)
            total = reader.execute(COUNT_QUERY.format(table=self._table), parameters).fetchone()[0]
            kind = self.options.format_for(total)
            temporary = self._directory / f"base-{top}.tmp"
            query = REBUILD_QUERY.format(table=self._table)
            if kind == "ivf" and total:
                lists = self.options.lists_for(total)
                wanted = TRAINING_VECTORS_PER_LIST * lists
                sample = [
                    training_sample(reader, query, parameters, wanted, total, self._dimensions)
                ]  # build_ivf lets go of it
                rows = reader.execute(query, parameters)  # a second pass: memory stays bounded
                items = build_ivf(temporary, sample, rows, self._dimensions, lists)
            else:
                kind = "ann"
                rows = reader.execute(query, parameters)
                items = build_annoy(temporary, rows, self._dimensions, self.options.trees)
        finally:
            reader.close()
        final = self._directory / f"base-{top}-{self._dimensions}d-{items}n.{kind}"
        fresh: Base | None = None
        if items:
            sync_base(temporary)
            publish_base(temporary, final)
            fresh = open_base(final, self._dimensions, items, self.options)
        with self._lock:
            self._base, self._base_seq, self._base_items = fresh, top, items
            self._base_format = kind
            self._delta = self._delta.newer_than(top)
            self.version += 1
        self._remove_old_files(keep=final)
        log.info("index: rebuilt %s base of %d vectors (seq %d) in %.1f s",
                 kind, items, top, time.monotonic() - started)  # fmt: skip
