"""The vector index: a memory-mapped Annoy base, an exact in-memory delta, and tombstones
derived from the catalog.

Annoy cannot add items after a build. New vectors go to the delta, searched exactly with
numpy; past a threshold a new base is built in the background from the catalog, written
to a new file, published with `os.replace` and swapped in under a lock: queries never
wait for a build.

Every vector in the catalog has a sequence number that grows with each write. A base
file is named after the highest sequence number it holds and its size
(`base-<seq>-<dims>d-<items>n.ann`), so it knows which vectors it has without a second
file that could disagree with it after a crash. A base candidate is valid only if the
catalog's current vector for that file is no newer than the base (`seq <= base seq`);
otherwise the file was deleted, changed or re-embedded since: that is its tombstone.
Delta candidates must match the catalog's current seq exactly. The searcher checks both
against the catalog (`SearchReads.hits`).

Item ids are catalog file ids.

A small base is searched exactly instead, over the item vectors inside the same
memory-mapped file (`ExactBase`): measured on caption-like vectors (docs/
benchmarks-search.md), Annoy with 25 trees and search_k 10,000 found only .84 of the
true top 10 at 10 k items, while an exact scan of 10 k vectors costs under a millisecond.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from annoy import AnnoyIndex

from semfs.catalog.database import Catalog
from semfs.config import make_private_dirs

log = logging.getLogger(__name__)

Vector = np.ndarray[Any, np.dtype[np.float32]]
MAX_SEQ_QUERY = "SELECT coalesce(max(seq), 0) FROM {table}"
REBUILD_QUERY = "SELECT file_id, vector FROM {table} WHERE embedder = ? AND seq <= ?"
_BASE_NAME = re.compile(r"base-(\d+)-(\d+)d-(\d+)n\.ann")


@dataclass(frozen=True)
class Candidate:
    file_id: int
    distance: float  # angular: sqrt(2 - 2 cos), 0 (same) .. 2 (opposite), as Annoy reports
    seq: int  # delta: exact seq of the vector; base: the base's seq (an upper bound)
    from_base: bool


@dataclass(frozen=True)
class Shortlist:
    wanted: int
    base: list[Candidate]  # nearest first
    delta: list[Candidate]  # nearest first

    def merged(self) -> list[Candidate]:
        return sorted(self.base + self.delta, key=lambda candidate: candidate.distance)

    def exhausted(self, max_distance: float) -> bool:
        """Whether asking for more candidates could find more within `max_distance`:
        only if a source returned all it was asked for, all of them that close."""
        return all(
            len(found) < self.wanted or found[-1].distance > max_distance
            for found in (self.base, self.delta)
        )


def angular_distances(matrix: Vector, vector: Vector) -> Vector:
    # einsum, not `@`: OpenBLAS splits a matrix-vector product over threads, and on a busy
    # 2-core machine those wait for each other: 12 ms for 2,000 rows instead of 0.16 ms
    # (10,000 rows: 12 ms against 0.7 ms), measured in one run (docs/benchmarks-search.md).
    cosines = np.einsum("ij,j->i", matrix, vector)
    distances: Vector = np.sqrt(np.maximum(0.0, 2.0 - 2.0 * cosines)).astype(np.float32)
    return distances


class Delta:
    """New vectors since the base, searched exactly. Not thread-safe: the index locks."""

    def __init__(self, dimensions: int) -> None:
        self._matrix = np.zeros((64, dimensions), dtype=np.float32)
        self._ids: list[int] = []
        self._seqs: list[int] = []
        self._row_of: dict[int, int] = {}  # file id -> its live row
        self._dead = np.zeros(64, dtype=bool)

    def __len__(self) -> int:
        return len(self._row_of)

    def add(self, file_id: int, seq: int, vector: Vector) -> None:
        old = self._row_of.get(file_id)
        if old is not None:
            self._dead[old] = True
        row = len(self._ids)
        if row == len(self._matrix):
            self._matrix = np.concatenate([self._matrix, np.zeros_like(self._matrix)])
            self._dead = np.concatenate([self._dead, np.zeros_like(self._dead)])
        self._matrix[row] = vector
        self._ids.append(file_id)
        self._seqs.append(seq)
        self._row_of[file_id] = row

    def search(self, vector: Vector, n: int) -> list[Candidate]:
        rows = len(self._ids)
        if rows == 0:
            return []
        distances = angular_distances(self._matrix[:rows], vector)
        distances[self._dead[:rows]] = np.inf
        best = np.argsort(distances)[:n]
        return [
            Candidate(self._ids[i], float(distances[i]), self._seqs[i], from_base=False)
            for i in best
            if np.isfinite(distances[i])
        ]

    def newer_than(self, seq: int) -> Delta:
        """A copy without the vectors a new base (holding up to `seq`) has taken over."""
        kept = Delta(self._matrix.shape[1])
        for file_id, row in self._row_of.items():
            if self._seqs[row] > seq:
                kept.add(file_id, self._seqs[row], self._matrix[row])
        return kept


# An Annoy angular node: int32 n_descendants, int32 children[2], then float32 v[dims].
# Items are nodes 0 .. n_items - 1 (n_descendants == 1; ids never added are zeros).
_ANNOY_NODE_HEADER = 3


class ExactBase:
    """The item vectors of a base Annoy file, read in place (memory-mapped, no copy) and
    searched exactly. Read-only after construction: safe to share between threads."""

    def __init__(self, path: Path, annoy: AnnoyIndex, dimensions: int) -> None:
        items = annoy.get_n_items()
        width = _ANNOY_NODE_HEADER + dimensions
        raw = np.memmap(path, dtype=np.float32, mode="r")
        if items == 0 or raw.size < items * width:
            raise ValueError(f"{path}: not an Annoy file of {dimensions}-d items")
        nodes = raw[: items * width].reshape(items, width)
        self._vectors = nodes[:, _ANNOY_NODE_HEADER:]  # rows of a strided view: BLAS reads it
        self._present = nodes[:, 0].view(np.int32) == 1
        probe = int(np.flatnonzero(self._present)[-1]) if self._present.any() else 0
        if not np.array_equal(
            self._vectors[probe], np.asarray(annoy.get_item_vector(probe), dtype=np.float32)
        ):
            raise ValueError(f"{path}: item layout is not the one this code reads")

    def search(self, vector: Vector, n: int, seq: int) -> list[Candidate]:
        distances = angular_distances(self._vectors, vector)
        distances[~self._present] = np.inf
        n = min(n, len(distances))
        best = np.argpartition(distances, n - 1)[:n]
        best = best[np.argsort(distances[best])]
        return [
            Candidate(int(i), float(distances[i]), seq, from_base=True)
            for i in best
            if np.isfinite(distances[i])
        ]


class VectorIndex:
    def __init__(
        self,
        directory: Path,
        embedder: str,
        dimensions: int,
        trees: int = 25,
        search_k: int = 10_000,
        rebuild_threshold: int = 2_000,
        exact_below: int = 20_000,
        table: str = "vectors",
    ) -> None:
        self._directory = directory
        self._table = table  # the catalog table of its vectors (catalog.records.VECTOR_TABLES)
        self._embedder = embedder
        self._dimensions = dimensions
        self._trees = trees
        self._search_k = search_k
        self._rebuild_threshold = rebuild_threshold
        self._exact_below = exact_below
        self._lock = threading.Lock()
        self._base: AnnoyIndex | None = None  # GUARDED_BY(_lock); read-only once loaded
        self._exact: ExactBase | None = None  # GUARDED_BY(_lock); the base, if small
        self._base_seq = 0  # GUARDED_BY(_lock)
        self._base_items = 0  # GUARDED_BY(_lock)
        self._delta = Delta(dimensions)  # GUARDED_BY(_lock)
        self._rebuilding = threading.Lock()  # held by the one running rebuild
        self.version = 0  # bumped by every change a search could see

    # --- loading -----------------------------------------------------------------------

    def load(self, catalog: Catalog, tidy: bool = True) -> None:
        """Open the newest base file for these dimensions and fill the delta from the
        catalog with every vector written after it. `tidy` removes older bases and
        half-written builds (only the process that builds may)."""
        make_private_dirs(self._directory)
        best = self._newest_base()
        if best is not None:
            path, seq, items = best
            base: AnnoyIndex | None = AnnoyIndex(self._dimensions, "angular")
            assert base is not None
            try:
                base.load(str(path), prefault=False)  # memory-mapped: pages come on demand
            except OSError:  # replaced by a rebuild meanwhile: the delta has it all
                log.warning("index: cannot load %s; searching exactly", path)
                best, base, seq, items = None, None, 0, 0
            exact = self._exact_base(path, base, items)
            with self._lock:
                self._base, self._base_seq, self._base_items = base, seq, items
                self._exact = exact
        if tidy:
            self._remove_old_files(keep=best[0] if best else None)
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

    def _exact_base(self, path: Path, base: AnnoyIndex | None, items: int) -> ExactBase | None:
        if base is None or items >= self._exact_below:
            return None
        try:
            return ExactBase(path, base, self._dimensions)
        except (OSError, ValueError) as error:  # Annoy still answers, approximately
            log.warning("index: cannot search %s exactly: %s", path, error)
            return None

    def _newest_base(self) -> tuple[Path, int, int] | None:
        found = base_files(self._directory, self._dimensions)
        if not found:
            return None
        seq, items, path = found[-1]
        return path, seq, items

    def _remove_old_files(self, keep: Path | None) -> None:
        """Older bases and half-written builds (a crash mid-rebuild leaves a .tmp)."""
        for path in self._directory.iterdir():
            if path != keep and (path.suffix == ".tmp" or path.suffix == ".ann"):
                path.unlink(missing_ok=True)

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

    def search(self, vector: Vector, n: int) -> Shortlist:
        """The n nearest candidates of base and of delta. Some may be stale; the caller
        validates them against the catalog."""
        with self._lock:
            base, base_seq, exact = self._base, self._base_seq, self._exact
            from_delta = self._delta.search(vector, n)
        from_base: list[Candidate] = []
        if exact is not None:
            from_base = exact.search(vector, n, base_seq)
        elif base is not None:
            ids, distances = base.get_nns_by_vector(
                vector.tolist(), n, search_k=max(self._search_k, n), include_distances=True
            )
            from_base = [
                Candidate(i, d, base_seq, True) for i, d in zip(ids, distances, strict=True)
            ]
        return Shortlist(n, from_base, from_delta)

    # --- rebuilding ------------------------------------------------------------------------

    def needs_rebuild(self, catalog: Catalog) -> bool:
        with self._lock:
            waiting, base_seq, base_items = len(self._delta), self._base_seq, self._base_items
        if waiting >= self._rebuild_threshold:
            return True
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
            rows = reader.execute(REBUILD_QUERY.format(table=self._table), (self._embedder, top))
            temporary = self._directory / f"base-{top}.tmp"
            base = AnnoyIndex(self._dimensions, "angular")
            base.on_disk_build(str(temporary))  # built in the file: memory stays bounded
            items = 0
            for file_id, blob in rows:
                base.add_item(file_id, np.frombuffer(blob, dtype=np.float32).tolist())
                items += 1
        finally:
            reader.close()
        final = self._directory / f"base-{top}-{self._dimensions}d-{items}n.ann"
        fresh: AnnoyIndex | None = None
        exact: ExactBase | None = None
        if items:
            base.build(self._trees, n_jobs=1)
            base.unload()
            os.chmod(temporary, 0o600)  # Annoy made it 0666 less the daemon's umask (0)
            with open(temporary, "rb") as file:
                os.fsync(file.fileno())
            os.replace(temporary, final)  # the new base exists whole, or not at all
            _fsync_directory(self._directory)
            fresh = AnnoyIndex(self._dimensions, "angular")
            fresh.load(str(final), prefault=False)
            exact = self._exact_base(final, fresh, items)
        with self._lock:
            self._base, self._base_seq, self._base_items = fresh, top, items
            self._exact = exact
            self._delta = self._delta.newer_than(top)
            self.version += 1
        self._remove_old_files(keep=final)
        log.info("index: rebuilt base of %d vectors (seq %d) in %.1f s",
                 items, top, time.monotonic() - started)  # fmt: skip


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def base_files(directory: Path, dimensions: int) -> list[tuple[int, int, Path]]:
    """(seq, items, path) of the base files for these dimensions, oldest first."""
    found = []
    for path in directory.glob("base-*.ann"):
        match = _BASE_NAME.fullmatch(path.name)
        if match and int(match.group(2)) == dimensions:
            found.append((int(match.group(1)), int(match.group(3)), path))
    return sorted(found)
