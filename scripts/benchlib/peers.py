"""Top-10 search on the same vectors by exact numpy, Annoy (the store's own base file, at
several search_k) and, when installed, hnswlib and FAISS: recall@10 against exact and
time per query (one query at a time, one thread, as the daemon asks).

Recall counts a returned item as right if it is no farther than the exact 10th nearest
(plus 1e-5): near-ties (many images share a caption) then never count as misses.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from annoy import AnnoyIndex

Matrix = np.ndarray[Any, np.dtype[np.float32]]
K = 10
ANNOY_SEARCH_K = (1_000, 10_000, 30_000, 100_000, 300_000)
HNSW_EF = (16, 64, 256)
IVF_NPROBE = (4, 16, 64)


@dataclass(frozen=True)
class PeerResult:
    method: str  # "exact numpy", "annoy", "hnswlib", "faiss-ivf", ...
    setting: str  # e.g. "search_k 10000"
    recall: float  # mean recall@10
    p50_ms: float
    p95_ms: float
    build_s: float | None = None
    note: str = ""


@dataclass(frozen=True)
class Truth:
    ids: list[set[int]]  # exact top-10 rows per query
    limits: list[float]  # cosine of the exact 10th nearest, per query
    times: list[float]


def exact_truth(data: Matrix, queries: Matrix) -> Truth:
    ids, limits, times = [], [], []
    for query in queries:
        started = time.perf_counter()
        cosines = np.einsum("ij,j->i", data, query)  # one thread, as the daemon scans
        top = np.argpartition(-cosines, K)[:K]
        times.append(time.perf_counter() - started)
        ids.append(set(top.tolist()))
        limits.append(float(cosines[top].min()))
    return Truth(ids, limits, times)


def recall(data: Matrix, query: Matrix, rows: list[int], limit: float) -> float:
    if not rows:
        return 0.0
    cosines = data[np.asarray(rows[:K])] @ query
    return float(np.count_nonzero(cosines >= limit - 1e-5)) / K


def _timed_rows(
    queries: Matrix, search: Callable[[Matrix], list[int]]
) -> Iterator[tuple[float, list[int]]]:
    for query in queries:
        started = time.perf_counter()
        rows = search(query)
        yield time.perf_counter() - started, rows


def _measure(
    data: Matrix, queries: Matrix, truth: Truth, method: str, setting: str,
    search: Callable[[Matrix], list[int]], build_s: float | None = None, note: str = "",
) -> PeerResult:  # fmt: skip
    search(queries[0])  # first touch (page faults of a memory-mapped file) is not timed
    times, recalls = [], []
    for (elapsed, rows), query, limit in zip(
        _timed_rows(queries, search), queries, truth.limits, strict=True
    ):
        times.append(elapsed)
        recalls.append(recall(data, query, rows, limit))
    return PeerResult(method, setting, statistics.mean(recalls), _p(times, 0.5), _p(times, 0.95),
                      build_s, note)  # fmt: skip


def _p(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def exact_numpy(truth: Truth) -> PeerResult:
    return PeerResult("exact numpy", "einsum, one thread", 1.0, _p(truth.times, 0.5),
                      _p(truth.times, 0.95))  # fmt: skip


def annoy(
    data: Matrix, queries: Matrix, truth: Truth, path: Path, build_s: float, trees: int,
    search_ks: tuple[int, ...] = ANNOY_SEARCH_K, first_id: int = 1,
) -> list[PeerResult]:  # fmt: skip
    """The store's base file (ids are rows + first_id), memory-mapped as the daemon has it."""
    index = AnnoyIndex(data.shape[1], "angular")
    index.load(str(path), prefault=False)
    results = []
    for search_k in search_ks:

        def search(query: Matrix, search_k: int = search_k) -> list[int]:
            found = index.get_nns_by_vector(query.tolist(), K, search_k=search_k)
            return [i - first_id for i in found if i >= first_id]

        results.append(
            _measure(
                data,
                queries,
                truth,
                "annoy",
                f"{trees} trees, search_k {search_k:,}",
                search,
                build_s,
            )
        )
    index.unload()
    return results


def hnswlib_peer(
    data: Matrix, queries: Matrix, truth: Truth, efs: tuple[int, ...] = HNSW_EF
) -> list[PeerResult]:
    try:
        import hnswlib
    except ImportError:
        return [PeerResult("hnswlib", "-", float("nan"), float("nan"), float("nan"),
                           note="not installed: pip install .[bench]")]  # fmt: skip
    started = time.perf_counter()
    index = hnswlib.Index(space="ip", dim=data.shape[1])
    index.init_index(max_elements=len(data), M=16, ef_construction=100)
    index.add_items(data, num_threads=2)
    build_s = time.perf_counter() - started
    index.set_num_threads(1)
    results = []
    for ef in efs:
        index.set_ef(max(ef, K))

        def search(query: Matrix) -> list[int]:
            labels, _ = index.knn_query(query, k=K)
            return [int(i) for i in labels[0]]

        results.append(_measure(data, queries, truth, "hnswlib", f"M 16, ef {ef}", search,
                                build_s, "built with 2 threads, in memory"))  # fmt: skip
    return results


def faiss_peers(data: Matrix, queries: Matrix, truth: Truth) -> list[PeerResult]:
    try:
        import faiss
    except ImportError:
        return [PeerResult("faiss", "-", float("nan"), float("nan"), float("nan"),
                           note="not installed: pip install .[bench]")]  # fmt: skip
    faiss.omp_set_num_threads(1)
    results = []
    started = time.perf_counter()
    flat = faiss.IndexFlatIP(data.shape[1])
    flat.add(data)
    build_s = time.perf_counter() - started

    def search_flat(query: Matrix) -> list[int]:
        _, labels = flat.search(query[None, :], K)
        return [int(i) for i in labels[0]]

    results.append(_measure(data, queries, truth, "faiss", "IndexFlatIP (exact)", search_flat,
                            build_s))  # fmt: skip
    flat.reset()  # frees its copy of the vectors
    lists = max(16, int(4 * np.sqrt(len(data))))
    started = time.perf_counter()
    faiss.omp_set_num_threads(2)
    quantizer = faiss.IndexFlatIP(data.shape[1])
    ivf = faiss.IndexIVFFlat(quantizer, data.shape[1], lists, faiss.METRIC_INNER_PRODUCT)
    sample = data[np.random.default_rng(0).choice(len(data), min(len(data), 40 * lists), False)]
    ivf.train(sample)
    ivf.add(data)
    build_s = time.perf_counter() - started
    faiss.omp_set_num_threads(1)
    for nprobe in IVF_NPROBE:
        ivf.nprobe = nprobe

        def search_ivf(query: Matrix) -> list[int]:
            _, labels = ivf.search(query[None, :], K)
            return [int(i) for i in labels[0] if i >= 0]

        results.append(_measure(data, queries, truth, "faiss", f"IVFFlat {lists} lists, "
                                f"nprobe {nprobe}", search_ivf, build_s,
                                "trained and built with 2 threads"))  # fmt: skip
    return results


def annoy_fresh(
    data: Matrix, queries: Matrix, truth: Truth, work: Path, trees: int,
    search_ks: tuple[int, ...] = ANNOY_SEARCH_K,
) -> list[PeerResult]:  # fmt: skip
    """An Annoy index built here (ids = rows), for vectors that have no store."""
    path = work / "peer.ann"
    started = time.perf_counter()
    index = AnnoyIndex(data.shape[1], "angular")
    index.on_disk_build(str(path))
    for row, vector in enumerate(data):
        index.add_item(row, vector.tolist())
    index.build(trees, n_jobs=1)
    index.unload()
    build_s = time.perf_counter() - started
    try:
        return annoy(data, queries, truth, path, build_s, trees, search_ks, first_id=0)
    finally:
        path.unlink()


# --- the index sweep (scripts/bench_index_sweep.py): tuned and held-out query halves ----


@dataclass
class SweepRow:
    """One engine at one setting on one kind and size of vectors. Recall is measured on
    both query halves: `recall_tune` chooses settings, `recall_held` is reported beside it.
    Latency is over all queries, one at a time on one thread."""

    engine: str  # "exact f32", "annoy", "faiss IVFFlat (mmap)", ...
    setting: str
    params: dict[str, Any]
    recall_tune: float
    recall_held: float
    p50_ms: float
    p95_ms: float
    build_s: float | None = None
    resident_bytes: int | None = None  # heap the engine keeps (anonymous memory)
    mapped_bytes: int | None = None  # file it reads through a memory map (file-backed)
    disk_bytes: int | None = None
    note: str = ""


def sweep_measure(
    data: Matrix, queries: Matrix, truth: Truth, tune: np.ndarray,
    search: Callable[[Matrix], list[int]], engine: str, setting: str,
    params: dict[str, Any] | None = None, **extra: Any,
) -> SweepRow:  # fmt: skip
    """Time `search` (rows of `data`, best first) on every query; recall@10 on each half."""
    search(queries[0])  # first touch is not timed
    times, recalls = [], []
    for (elapsed, rows), query, limit in zip(
        _timed_rows(queries, search), queries, truth.limits, strict=True
    ):
        times.append(elapsed)
        recalls.append(recall(data, query, rows, limit))
    values = np.asarray(recalls)
    return SweepRow(engine, setting, dict(params or {}), float(values[tune].mean()),
                    float(values[~tune].mean()), _p(times, 0.5), _p(times, 0.95),
                    **extra)  # fmt: skip


def top_rows(scores: np.ndarray, k: int = K) -> list[int]:
    """Rows of the k highest scores, best first."""
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.argsort(-scores[top])].tolist()


def rerank(data: Matrix, query: Matrix, rows: list[int] | np.ndarray) -> list[int]:
    """The rows re-ordered by their float32 cosine to the query, top K."""
    candidates = np.asarray(rows, dtype=np.int64)
    candidates = candidates[candidates >= 0]
    if len(candidates) == 0:
        return []
    scores = np.einsum("ij,j->i", data[candidates], query)
    return candidates[top_rows(scores)].tolist()


class Groups:
    """Images grouped under their distinct vector: `rows_of(d)` are the image rows whose
    vector is distinct vector d (any order: they are ties)."""

    def __init__(self, distinct_of_row: np.ndarray) -> None:
        self.order = np.argsort(distinct_of_row, kind="stable")
        counts = np.bincount(distinct_of_row)
        self.offsets = np.concatenate([[0], np.cumsum(counts)])

    def expand(self, distinct: list[int], k: int = K) -> list[int]:
        rows: list[int] = []
        for d in distinct:
            end = min(self.offsets[d + 1], self.offsets[d] + k - len(rows))
            rows += self.order[self.offsets[d] : end].tolist()
            if len(rows) >= k:
                break
        return rows


def build_annoy(data: Matrix, path: Path, trees: int, jobs: int) -> float:
    """An Annoy file of `data` (ids = rows), built in memory with `jobs` threads and saved;
    the build time in seconds."""
    started = time.perf_counter()
    index = AnnoyIndex(data.shape[1], "angular")
    for row, vector in enumerate(data):
        index.add_item(row, vector.tolist())
    index.build(trees, n_jobs=jobs)
    index.save(str(path))
    index.unload()
    return time.perf_counter() - started


def proc_status() -> dict[str, int]:
    """VmRSS, RssAnon, RssFile, VmHWM of this process, in bytes (/proc/self/status)."""
    found: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            found[key] = int(value.split()[0]) * 1024
    return found
