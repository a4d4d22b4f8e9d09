"""Base indexes: the immutable, memory-mapped part of a vector index, built in the
background from the catalog and published whole with `os.replace`.

Three ways to search a base, chosen by `index_engine` and the base's size
(docs/benchmarks-search-sweep.md has the measurements behind the defaults):
- `ExactBase`: bases under 80,000 vectors are scanned exactly, over the item vectors
  inside the Annoy file (recall 1.0; 10 k vectors cost under a millisecond);
- `IvfBase`: FAISS IVF-Flat, its inverted lists in a file of their own, memory-mapped
  (FAISS's on-disk lists); a query scans the `nprobe` lists nearest to it, exactly, so
  distances are exact;
- `AnnoyBase`: the storage design's Annoy forest, selectable with `index_engine = "annoy"`
  (its recall on caption vectors falls from .84 at 10 k to .20 at 1 M at search_k 10,000).

A base is named after the highest catalog sequence number it holds and its size,
`base-<seq>-<dims>d-<items>n.ann` (an Annoy file) or `.ivf` (a FAISS directory: the index
and its inverted lists), so it knows which vectors it has without a second record that
could disagree with it after a crash.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
import re
import shutil
import sqlite3
import sys
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
PROBED_SHARE = 0.008  # IVF: the least share of the lists a query scans
SHARD = 100_000  # vectors an IVF build holds in memory at a time (150 MB at 384-d)

# One thread: a search is one query, and on a shared 2-core machine OpenMP's threads
# only wait for each other (as OpenBLAS's do: docs/benchmarks-search.md).
faiss.omp_set_num_threads(1)


@dataclass(frozen=True)
class IndexOptions:
    engine: str = "auto"
    trees: int = 25  # Annoy
    search_k: int = 10_000  # Annoy
    # Below 80,000 vectors IVF (nprobe 16, even 48) found only .88-.94 of the true top 10
    # of caption-like vectors, at 80,000 an exact scan costs a few milliseconds; from
    # 70,000 IVF finds .956, at 100 k .974 (measured 2026-12-07, docs/
    # benchmarks-search-sweep.md and its Findings).
    exact_below: int = 80_000  # Annoy files this small are scanned exactly
    ivf_from: int = 80_000  # "auto": bases this large are FAISS IVF
    lists_per_root: float = 4.0  # IVF lists = this * sqrt(items)
    nprobe: int = 16  # IVF lists scanned a query

    def format_for(self, items: int) -> str:
        """The base file format ("ann" or "ivf") a base of `items` vectors is built in."""
        if self.engine == "ivf" or (self.engine == "auto" and items >= self.ivf_from):
            return "ivf"
        return "ann"

    def lists_for(self, items: int) -> int:
        return max(1, min(items // 8, round(self.lists_per_root * math.sqrt(items))))

    def nprobe_for(self, lists: int) -> int:
        """`nprobe`, but at least 0.8 % of the lists: at 1 M (4,000 lists) nprobe 16 found
        only .938 of the true top 10 of sentence captions, 32 found .974 (the sweep)."""
        return max(self.nprobe, math.ceil(lists * PROBED_SHARE))


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
        rows = nearest(distances, n)
        return [
            Candidate(i, d, seq, True)
            for i, d in zip(rows.tolist(), distances[rows].tolist(), strict=True)
        ]


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


IVF_INDEX = "index"  # in an IVF base's directory: the trained index, lists elsewhere
IVF_LISTS = "lists.ivfdata"  # the inverted lists (FAISS OnDiskInvertedLists), mapped


def read_ivf(directory: Path) -> Any:
    """The FAISS index of an IVF base, its lists memory-mapped from the same directory
    (wherever the store is now: the index names them as they were at the build)."""
    with _c_stdout_silenced():  # FAISS printf()s the lists' new name: not on our stdout
        index = faiss.read_index(str(directory / IVF_INDEX), faiss.IO_FLAG_ONDISK_SAME_DIR)
    # On-disk lists start 32 threads a search to read the probed lists ahead. On 2 cores
    # they cost more than they save (a search 0.75 -> 0.24 ms at 100 k, 3-3.9 -> 1.1 ms at
    # 1 M, pages in the page cache), and they may touch pages after a search has let them go.
    lists = faiss.extract_index_ivf(index).invlists
    if lists is not None:
        on_disk = faiss.downcast_InvertedLists(lists)
        if isinstance(on_disk, faiss.OnDiskInvertedLists):
            on_disk.prefetch_nthread = 0
    return index


_libc = ctypes.CDLL(None)


@contextlib.contextmanager
def _c_stdout_silenced() -> Iterator[None]:
    """File descriptor 1 goes to /dev/null meanwhile. Nothing of semfs writes to stdout
    while an index loads (`semfs check --json` and `semfs search` print after)."""
    sys.stdout.flush()
    _libc.fflush(None)
    saved = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        yield
    finally:
        _libc.fflush(None)
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)


class IvfBase:
    """FAISS IVF-Flat over inner products of unit vectors, its lists memory-mapped and
    let go after each search. Safe to share between threads (searches only read)."""

    def __init__(self, path: Path, dimensions: int, options: IndexOptions) -> None:
        self._index, self._pages = MappedPages.around(path / IVF_LISTS, lambda: read_ivf(path))
        if self._index.d != dimensions:
            raise ValueError(f"{path}: {self._index.d}-d vectors, not {dimensions}-d")
        self._parameters = faiss.SearchParametersIVF()  # only read by searches
        self._parameters.nprobe = options.nprobe_for(self._index.nlist)

    def search(self, vector: Vector, n: int, seq: int) -> list[Candidate]:
        cosines, ids = self._index.search(vector.reshape(1, -1), n, params=self._parameters)
        self._pages.release()
        found = ids[0] >= 0  # fewer than n in the probed lists: the rest are -1
        distances = angular_from_cosines(cosines[0][found])
        return [
            Candidate(i, d, seq, True)
            for i, d in zip(ids[0][found].tolist(), distances.tolist(), strict=True)
        ]


def open_base(path: Path, dimensions: int, items: int, options: IndexOptions) -> Base:
    """The base in `path`, searched the way its format and size call for."""
    if path.suffix == ".ivf":
        return IvfBase(path, dimensions, options)
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
            self._ivf = read_ivf(path)
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


def build_ivf(
    temporary: Path, sample: list[np.ndarray], rows: Rows, dimensions: int, lists: int
) -> int:
    """Build a FAISS IVF-Flat base in the new directory `temporary`: lists trained on
    the one array in `sample` (k-means; taken out, so that its memory goes back), then
    every row added, a shard of SHARD vectors at a time, each written to a file; the
    shards are merged into one file of inverted lists read through their mappings, so
    memory holds one shard, not the whole base (1.5 GiB at 1 M). The number of items."""
    temporary.mkdir()
    quantizer = faiss.IndexFlatIP(dimensions)
    trained = faiss.IndexIVFFlat(quantizer, dimensions, lists, faiss.METRIC_INNER_PRODUCT)
    trained.cp.niter = 10  # k-means: the lists need not be optimal, only balanced enough
    trained.cp.max_points_per_centroid = 64
    trained.cp.min_points_per_centroid = 1  # a small base trains on few points: no warning
    trained.train(sample.pop())  # `sample` held the only reference: freed after training
    items, shards = 0, list[Path]()
    shard = faiss.clone_index(trained)
    for ids, vectors in _batches(rows, dimensions):
        shard.add_with_ids(vectors, ids)
        items += len(ids)
        if shard.ntotal >= SHARD:
            shards.append(_write_shard(shard, temporary, len(shards)))
            shard = faiss.clone_index(trained)
    if shard.ntotal or not shards:
        shards.append(_write_shard(shard, temporary, len(shards)))
    del shard
    with _c_stdout_silenced():  # FAISS printf()s the lists file's size
        _merge_shards(trained, shards, temporary / IVF_LISTS)
    faiss.write_index(trained, str(temporary / IVF_INDEX))
    for path in shards:
        path.unlink()
    return items


def _write_shard(shard: Any, directory: Path, number: int) -> Path:
    path = directory / f"shard-{number}"
    faiss.write_index(shard, str(path))
    return path


def _merge_shards(trained: Any, shards: list[Path], lists_path: Path) -> None:
    """faiss.contrib.ondisk.merge_ondisk, less its leak: the shards' mappings are let go."""
    library: Any = faiss  # its bundled type hints lack these
    opened: list[Any] = [library.read_index(str(path), library.IO_FLAG_MMAP) for path in shards]
    pointers = library.InvertedListsPtrVector()
    for shard in opened:
        pointers.push_back(shard.invlists)
    on_disk: Any = library.OnDiskInvertedLists(trained.nlist, trained.code_size, str(lists_path))
    trained.ntotal = on_disk.merge_from_multiple(pointers.data(), pointers.size(), False)
    trained.replace_invlists(on_disk, True)  # the index owns (and frees) its lists
    on_disk.this.disown()
    del pointers, opened  # each shard index owns its mapped lists: unmapped here


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
    """About `wanted` of the `total` vectors `query` gives, spread evenly over them,
    copied into one array as they come (a list of 160,000 small arrays at 1 M left the
    heap 270 MB larger after the build: measured)."""
    stride = max(1, total // max(1, wanted))
    sample = np.empty((-(-total // stride), dimensions), dtype=np.float32)
    taken = 0
    for number, (_, blob) in enumerate(reader.execute(query, parameters)):
        if number % stride == 0 and taken < len(sample):
            sample[taken] = np.frombuffer(blob, dtype=np.float32)
            taken += 1
    return sample[:taken]


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


def remove_base(path: Path) -> None:
    """Remove a base or a half-written build: a file, or an IVF base's directory."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def base_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(part.stat().st_size for part in path.iterdir() if part.is_file())
    return path.stat().st_size


def sync_base(path: Path) -> None:
    """fsync a finished build before it is published: its files, and a directory's entries."""
    parts = sorted(path.iterdir()) if path.is_dir() else [path]
    for part in parts:
        os.chmod(part, 0o600)  # the library made it 0666 less the daemon's umask (0)
        with open(part, "rb") as file:
            os.fsync(file.fileno())
    if path.is_dir():
        os.chmod(path, 0o700)
        fsync_directory(path)


def publish_base(temporary: Path, final: Path) -> None:
    """Give a synced build its final name: whole, or not at all. A directory cannot
    replace one of the same name (a rebuild of the same vectors, by `semfs check
    --repair`): that one is moved aside first, so a crash between the two renames leaves
    no base, and the catalog's vectors are searched exactly until the next build."""
    if final.is_dir():
        aside = final.with_name(final.name + ".old.tmp")
        remove_base(aside)
        os.replace(final, aside)
    os.replace(temporary, final)
    fsync_directory(final.parent)


def fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
