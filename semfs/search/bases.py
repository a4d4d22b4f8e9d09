"""Base indexes: the immutable, memory-mapped part of a vector index, built in the
background from the catalog and published whole with `os.replace`.

Three ways to search a base, chosen by `index_engine` and the base's size
(docs/benchmarks-search-sweep.md has the measurements behind the defaults):
- `ExactBase`: small bases are scanned exactly, over the item vectors inside the Annoy
  file (recall 1.0; 10 k vectors cost under a millisecond);
- `IvfBase`: FAISS IVF-Flat, its inverted lists memory-mapped (`IO_FLAG_MMAP`); a query
  scans the `nprobe` lists nearest to it, exactly, so distances are exact;
- `AnnoyBase`: the storage design's Annoy forest, selectable with `index_engine = "annoy"`
  (its recall on caption vectors falls from .84 at 10 k to .20 at 1 M at search_k 10,000).

A base file is named after the highest catalog sequence number it holds and its size,
`base-<seq>-<dims>d-<items>n.ann` (Annoy) or `.ivf` (FAISS), so it knows which vectors it
has without a second file that could disagree with it after a crash.
"""

from __future__ import annotations

import logging
import math
import re
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import faiss
import numpy as np
from annoy import AnnoyIndex

from semfs.search.pages import MappedPages
from semfs.search.shortlist import (
    Candidate,
    Vector,
    angular_distances,
    angular_from_cosines,
    nearest,
)

log = logging.getLogger(__name__)

BASE_NAME = re.compile(r"base-(\d+)-(\d+)d-(\d+)n\.(ann|ivf)")
BATCH = 10_000  # vectors read from the catalog and added at a time

# One thread: a search is one query, and on a shared 2-core machine OpenMP's threads
# only wait for each other (as OpenBLAS's do: docs/benchmarks-search.md).
faiss.omp_set_num_threads(1)


@dataclass(frozen=True)
class IndexOptions:
    engine: str = "auto"
    trees: int = 25  # Annoy
    search_k: int = 10_000  # Annoy
    exact_below: int = 20_000  # Annoy files this small are scanned exactly
    ivf_from: int = 20_000  # "auto": bases this large are FAISS IVF
    lists_per_root: float = 4.0  # IVF lists = this * sqrt(items)
    nprobe: int = 16  # IVF lists scanned a query

    def format_for(self, items: int) -> str:
        """The base file format ("ann" or "ivf") a base of `items` vectors is built in."""
        if self.engine == "ivf" or (self.engine == "auto" and items >= self.ivf_from):
            return "ivf"
        return "ann"

    def lists_for(self, items: int) -> int:
        return max(1, min(items // 8, round(self.lists_per_root * math.sqrt(items))))


class Base(Protocol):
    def search(self, vector: Vector, n: int, seq: int) -> list[Candidate]: ...


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
        return [Candidate(int(i), float(distances[i]), seq, True) for i in nearest(distances, n)]


# An Annoy angular node: int32 n_descendants, int32 children[2], then float32 v[dims].
# Items are nodes 0 .. n_items - 1 (n_descendants == 1; ids never added are zeros).
_ANNOY_NODE_HEADER = 3


class AnnoyBase:
    """Annoy's forest, memory-mapped; its pages are let go after each search."""

    def __init__(self, path: Path, dimensions: int, search_k: int) -> None:
        self.annoy = AnnoyIndex(dimensions, "angular")
        _, self._pages = MappedPages.around(
            path, lambda: self.annoy.load(str(path), prefault=False)
        )
        self._search_k = search_k

    def search(self, vector: Vector, n: int, seq: int) -> list[Candidate]:
        ids, distances = self.annoy.get_nns_by_vector(
            vector.tolist(), n, search_k=max(self._search_k, n), include_distances=True
        )
        self._pages.release()
        return [Candidate(i, d, seq, True) for i, d in zip(ids, distances, strict=True)]


class IvfBase:
    """FAISS IVF-Flat over inner products of unit vectors, its lists memory-mapped and
    let go after each search. Safe to share between threads (searches only read)."""

    def __init__(self, path: Path, dimensions: int, nprobe: int) -> None:
        self._index, self._pages = MappedPages.around(
            path, lambda: faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        )
        if self._index.d != dimensions:
            raise ValueError(f"{path}: {self._index.d}-d vectors, not {dimensions}-d")
        self._parameters = faiss.SearchParametersIVF()  # only read by searches
        self._parameters.nprobe = nprobe

    def search(self, vector: Vector, n: int, seq: int) -> list[Candidate]:
        cosines, ids = self._index.search(vector.reshape(1, -1), n, params=self._parameters)
        self._pages.release()
        found = ids[0] >= 0  # fewer than n in the probed lists: the rest are -1
        distances = angular_from_cosines(cosines[0][found])
        return [
            Candidate(int(i), float(d), seq, True)
            for i, d in zip(ids[0][found], distances, strict=True)
        ]


def open_base(path: Path, dimensions: int, items: int, options: IndexOptions) -> Base:
    """The base in `path`, searched the way its format and size call for."""
    if path.suffix == ".ivf":
        return IvfBase(path, dimensions, options.nprobe)
    annoy = AnnoyBase(path, dimensions, options.search_k)
    if items < options.exact_below:
        try:
            return ExactBase(path, annoy.annoy, dimensions)
        except (OSError, ValueError) as error:  # Annoy still answers, approximately
            log.warning("index: cannot search %s exactly: %s", path, error)
    return annoy


class StoredVectors:
    """The vectors a base file holds, by file id, for `semfs check` (not for searching)."""

    def __init__(self, path: Path, dimensions: int) -> None:
        """Raises OSError or RuntimeError if the file cannot be loaded."""
        self._annoy: AnnoyIndex | None = None
        self._ivf: Any = None
        if path.suffix == ".ivf":
            self._ivf = faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
            # file id -> (list, offset), hashed: file ids are not 0 .. n - 1
            self._ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
        else:
            self._annoy = AnnoyIndex(dimensions, "angular")
            self._annoy.load(str(path), prefault=False)

    def get(self, file_id: int) -> Vector | None:
        if self._annoy is not None:
            if file_id >= self._annoy.get_n_items():  # the highest item id + 1
                return None
            return np.asarray(self._annoy.get_item_vector(file_id), dtype=np.float32)
        try:
            vector: Vector = self._ivf.reconstruct(file_id)
        except RuntimeError:  # not in any list
            return None
        return vector

    def close(self) -> None:
        if self._annoy is not None:
            self._annoy.unload()
        self._ivf = None


# --- building ------------------------------------------------------------------------------

Rows = Iterable[tuple[int, bytes]]  # (file id, float32 vector bytes)


def build_annoy(temporary: Path, rows: Rows, dimensions: int, trees: int) -> int:
    """Write an Annoy base of `rows` to `temporary`; the number of items."""
    base = AnnoyIndex(dimensions, "angular")
    base.on_disk_build(str(temporary))  # built in the file: memory stays bounded
    items = 0
    for file_id, blob in rows:
        base.add_item(file_id, np.frombuffer(blob, dtype=np.float32).tolist())
        items += 1
    if items:
        base.build(trees, n_jobs=1)
    base.unload()
    return items


def build_ivf(temporary: Path, sample: np.ndarray, rows: Rows, dimensions: int, lists: int) -> int:
    """Write a FAISS IVF-Flat base to `temporary`: lists trained on `sample` (k-means),
    then every row added; the number of items."""
    quantizer = faiss.IndexFlatIP(dimensions)
    index = faiss.IndexIVFFlat(quantizer, dimensions, lists, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = 10  # k-means: the lists need not be optimal, only balanced enough
    index.cp.max_points_per_centroid = 64
    index.cp.min_points_per_centroid = 1  # a small base trains on few points: no warning
    index.train(sample)
    items = 0
    for ids, vectors in _batches(rows, dimensions):
        index.add_with_ids(vectors, ids)
        items += len(ids)
    faiss.write_index(index, str(temporary))
    return items


def _batches(rows: Rows, dimensions: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    ids: list[int] = []
    blobs: list[bytes] = []
    for file_id, blob in rows:
        ids.append(file_id)
        blobs.append(blob)
        if len(ids) == BATCH:
            yield _batch(ids, blobs, dimensions)
            ids, blobs = [], []
    if ids:
        yield _batch(ids, blobs, dimensions)


def _batch(ids: list[int], blobs: list[bytes], dimensions: int) -> tuple[np.ndarray, np.ndarray]:
    vectors = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(ids), dimensions)
    return np.asarray(ids, dtype=np.int64), vectors


def training_sample(
    reader: sqlite3.Connection,
    query: str,
    parameters: tuple[object, ...],
    wanted: int,
    total: int,
    dimensions: int,
) -> np.ndarray:
    """About `wanted` of the `total` vectors `query` gives, spread evenly over them."""
    stride = max(1, total // max(1, wanted))
    vectors = [
        np.frombuffer(blob, dtype=np.float32)
        for number, (_, blob) in enumerate(reader.execute(query, parameters))
        if number % stride == 0
    ]
    return np.stack(vectors) if vectors else np.zeros((0, dimensions), dtype=np.float32)


def base_files(directory: Path, dimensions: int) -> list[tuple[int, int, Path]]:
    """(seq, items, path) of the base files for these dimensions, oldest first."""
    found = []
    for path in directory.glob("base-*"):
        match = BASE_NAME.fullmatch(path.name)
        if match and int(match.group(2)) == dimensions:
            found.append((int(match.group(1)), int(match.group(3)), path))
    return sorted(found)


def is_leftover(path: Path) -> bool:
    """A base or a half-written build (a crash mid-rebuild leaves a .tmp)."""
    return path.suffix in (".tmp", ".ann", ".ivf")
