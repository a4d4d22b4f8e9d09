"""The index sweep that chooses semfs's search index (issue 21, items 1-2): recall@10
against exact search, latency, build time and size of every candidate engine and setting,
on the same vectors, at 10 k, 100 k and 1 M, on three kinds of vectors.

    .venv/bin/python scripts/bench_index_sweep.py [--sizes 10000,100000,1000000]
        [--kinds synthetic,real,sentences] [--work /tmp/sweep-work]
        [--json results.json] [--output docs/benchmarks-search-sweep.md] [--smoke]
        [--resume] [--report-only]

Vectors (benchlib/vectors.py), all embedded by onnx:paraphrase-MiniLM-L3-v2 (as bench_search):
- synthetic: `vectors.realistic`, perturbed embeddings of 5,000 ImageNet-label captions
  with Zipf popularity (every vector distinct).
- real: the captions semfs's default captioner writes for the evaluation sets' images
  (tuxpaint's photos and the photos set, `vectors.eval_set_captions`), each distinct
  caption drawn with its frequency as popularity, no noise: identical captions give
  identical vectors.
- sentences: tuxpaint's human-written sentences paraphrased by rule
  (`vectors.paraphrase`); --embedded-sentences distinct paraphrases are embedded, the
  other rows are mixes of two embedded paraphrases of one sentence plus small noise
  (`vectors.sentence_rows`).

Queries: --queries natural phrases never seen (`vectors.query_texts`), embedded by the same
embedder, split into two halves (alternate queries): settings are chosen on the tuning
half, recall is also reported on the held-out half. Recall counts ties with the exact
10th nearest as hits (benchlib/peers.py). Each query runs alone on one thread
(faiss.omp_set_num_threads(1), hnswlib set_num_threads(1)); builds use --build-threads.

Engines: exact float32 (np.einsum), float16 and int8 scans (FAISS IndexScalarQuantizer
QT_fp16 and QT_8bit_direct_signed over the vectors scaled by 127; int8 with and without a
float32 re-rank of its top candidates), Annoy (trees x search_k), Annoy and an exact scan
over distinct vectors only (images grouped under each), FAISS IndexIVFFlat and
IndexIVFScalarQuantizer QT_8bit (nlist = 4 sqrt(n), trained on at most --train-max
points, written to a file and read back with IO_FLAG_MMAP; SQ8 also with a float32
re-rank of its top 50), hnswlib (M 16). At --rss-size (1 M), each IVF variant is loaded
memory-mapped in a fresh process that answers --rss-queries different queries, and its
VmRSS, RssAnon and RssFile are read from /proc/self/status.

Results are written to --json after every kind and size (--resume skips those already
there); vectors and indexes are cached in --work, so a rerun reuses them.
--smoke: 2,000 and 5,000 vectors, a few settings, seconds; for the unit test.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from benchlib import peers, sweep_report, vectors
from benchlib.peers import SweepRow, sweep_measure

REPO = Path(__file__).resolve().parent.parent
EMBEDDER = "onnx:paraphrase-MiniLM-L3-v2"
KINDS = ("synthetic", "real", "sentences")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--work", type=Path, default=Path("/tmp/sweep-work"))
    parser.add_argument("--json", type=Path, help="raw results (written as it goes)")
    parser.add_argument("--output", type=Path, help="Markdown page (plots beside it)")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--pool", type=int, default=vectors.POOL_SIZE, help="synthetic captions")
    parser.add_argument("--embedded-sentences", type=int, default=40_000)
    parser.add_argument("--trees", default="25,50,100,200")
    parser.add_argument("--trees-large", default="25", help="Annoy trees at sizes >= 1 M")
    parser.add_argument(
        "--annoy-large-kinds",
        default="synthetic,sentences,real",
        help="kinds that get a full Annoy build at sizes >= 1 M",
    )
    parser.add_argument("--search-k", default="1000,3000,10000,30000,100000,300000")
    parser.add_argument("--nprobe", default="4,8,16,32,64")
    parser.add_argument("--ef", default="16,32,64,128,256")
    parser.add_argument("--hnsw-max", type=int, default=100_000, help="largest hnswlib size")
    parser.add_argument("--train-max", type=int, default=64_000)
    parser.add_argument("--build-threads", type=int, default=2)
    parser.add_argument("--rss-size", type=int, default=1_000_000)
    parser.add_argument("--rss-queries", type=int, default=1000)
    parser.add_argument("--rss-kinds", default=",".join(KINDS))
    parser.add_argument("--resume", action="store_true", help="keep results in --json")
    parser.add_argument("--report-only", action="store_true", help="page from --json only")
    parser.add_argument("--smoke", action="store_true", help="tiny and quick")
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.sizes, args.queries, args.embedded_sentences = "2000,5000", 20, 300
        args.trees, args.trees_large, args.search_k = "10", "10", "1000,10000"
        args.nprobe, args.ef, args.rss_size, args.rss_queries = "4,16", "16,64", 5000, 50
        args.train_max, args.pool, args.rss_kinds = 5000, 300, "synthetic"
    return args


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def size_label(n: int) -> str:
    return f"{n // 1_000_000} M" if n >= 1_000_000 and n % 1_000_000 == 0 else f"{n // 1000} k"


def log(*parts: Any) -> None:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%H:%M:%S")
    print(stamp, *parts, flush=True)


# --- vectors ---------------------------------------------------------------------------


class Vectors:
    """The embedder, the queries and each kind's source vectors, cached in `work`."""

    def __init__(self, args: argparse.Namespace) -> None:
        from semfs.ml.embedder import make_embedder

        self.args = args
        self.work: Path = args.work
        self.work.mkdir(parents=True, exist_ok=True)
        self.embedder = make_embedder(EMBEDDER)
        self.info: dict[str, Any] = {}
        self.timings: dict[str, float] = {}
        self.smoke = "-smoke" if args.smoke else ""

    def embed(self, name: str, texts: list[str]) -> np.ndarray:
        path = self.work / f"{name}{self.smoke}.npy"
        if path.is_file():
            cached = np.load(path)
            if len(cached) == len(texts):
                return cached
        started = time.perf_counter()
        rows = []
        for start in range(0, len(texts), 256):
            rows.append(self.embedder.embed(texts[start : start + 256]))
            if start and start % 10_240 == 0:
                log(f"embedded {start:,} of {len(texts):,} ({name})")
        matrix = np.ascontiguousarray(np.concatenate(rows), dtype=np.float32)
        np.save(path, matrix)
        self.timings[f"embedding {name} ({len(texts):,} texts)"] = time.perf_counter() - started
        return matrix

    def prepare(self) -> None:
        args = self.args
        kinds = args.kinds.split(",")
        exclude: set[str] = set()
        if "synthetic" in kinds:
            self.pool_texts = vectors.caption_pool(np.random.default_rng(0), args.pool)
            self.pool = self.embed("pool", self.pool_texts)
            exclude.update(self.pool_texts)
            self.info["synthetic"] = {"pool captions": len(self.pool_texts)}
        if "real" in kinds or "sentences" in kinds:
            started = time.perf_counter()
            captions = vectors.eval_set_captions(self.work, args.smoke)
            self.timings["captioning the evaluation sets (cached after the first run)"] = (
                time.perf_counter() - started
            )
            counts = Counter(captions["captions"])
            if not counts:  # no evaluation set installed: label captions, Zipf counts
                fallback = vectors.caption_pool(np.random.default_rng(1), 60)
                counts = Counter({c: max(1, 40 // (i + 1)) for i, c in enumerate(fallback)})
            self.real_texts = [text for text, _ in counts.most_common()]
            self.real_weights = np.array([c for _, c in counts.most_common()], dtype=np.float64)
            self.real = self.embed("real-captions", self.real_texts)
            exclude.update(self.real_texts)
            self.info["real"] = {
                "captioner": captions["captioner"],
                "images": captions["images"],
                "datasets": captions["datasets"],
                "captioning_s": captions["seconds"],
                "distinct captions": len(counts),
                "most common": counts.most_common(8),
                "images under the top caption": counts.most_common(1)[0][1],
                "captions used once": sum(1 for c in counts.values() if c == 1),
            }
            sentences = captions["sentences"] or [
                vectors.caption_from_labels([w]) for w in vectors.query_words()[:400]
            ]
            texts, sources = vectors.paraphrases(sentences, args.embedded_sentences, seed=3)
            self.sentence_texts = texts
            self.sentence_sources = np.asarray(sources)
            self.sentences = self.embed(f"sentences-{len(texts)}", texts)
            exclude.update(texts)
            self.info["sentences"] = {
                "source sentences": len(set(sources)),
                "embedded distinct paraphrases": len(texts),
                "examples": [
                    texts[i] for i in range(len(set(sources)), len(texts), max(1, len(texts) // 8))
                ][:8],
            }
        self.query_texts = vectors.query_texts(args.queries, seed=11, exclude=exclude)
        self.queries = self.embed(f"queries-{args.queries}", self.query_texts)
        self.tune = np.arange(len(self.queries)) % 2 == 0
        self.exclude = exclude

    def collection(self, kind: str, n: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The n vectors of `kind`, and each row's distinct-vector id (None: all distinct)."""
        path = self.work / f"{kind}-{n}{self.smoke}.npy"
        distinct_path = self.work / f"{kind}-{n}{self.smoke}-distinct.npy"
        if path.is_file():
            data = np.load(path)
            return data, np.load(distinct_path) if distinct_path.is_file() else None
        if kind == "synthetic":
            data = vectors.realistic(self.pool, self.pool_texts, n, seed=n).vectors
            distinct = None
        elif kind == "real":
            chosen = vectors.replicated(self.real, self.real_weights, n, seed=n)
            distinct = np.unique(chosen, return_inverse=True)[1].astype(np.int64)
            data = np.ascontiguousarray(self.real[chosen])
            np.save(distinct_path, distinct)
        else:
            data = vectors.sentence_rows(self.sentences, self.sentence_sources, n, seed=n)
            distinct = None
        np.save(path, data)
        return data, distinct


# --- engines ---------------------------------------------------------------------------


class Sweep:
    def __init__(self, args: argparse.Namespace, vecs: Vectors) -> None:
        self.args = args
        self.vecs = vecs
        self.indexes = args.work / ("indexes-smoke" if args.smoke else "indexes")
        self.indexes.mkdir(parents=True, exist_ok=True)
        self.skipped: list[str] = []

    def run(self, kind: str, n: int) -> dict[str, Any]:
        import faiss

        faiss.omp_set_num_threads(1)
        started = time.perf_counter()
        data, distinct = self.vecs.collection(kind, n)
        queries, tune = self.vecs.queries, self.vecs.tune
        truth = peers.exact_truth(data, queries)
        self.rows: list[SweepRow] = []
        self.prefix = f"{kind}-{n}{self.vecs.smoke}"
        self.data, self.queries, self.truth, self.tune = data, queries, truth, tune
        nbytes = data.nbytes
        self.add(
            "exact f32",
            "np.einsum, one thread",
            lambda q: peers.top_rows(np.einsum("ij,j->i", data, q)),
            resident_bytes=nbytes,
            note="vectors in memory (or mapped: the same pages)",
        )
        log(kind, n, "exact done")
        self.scalar_scans()
        log(kind, n, "f16/int8 done")
        if distinct is not None:
            self.distinct_engines(distinct)
            log(kind, n, "distinct done")
        self.annoy()
        log(kind, n, "annoy done")
        self.ivf()
        log(kind, n, "ivf done")
        if n <= self.args.hnsw_max:
            self.hnsw()
            log(kind, n, "hnswlib done")
        result: dict[str, Any] = {
            "kind": kind,
            "size": n,
            "distinct_vectors": int(distinct.max() + 1) if distinct is not None else n,
            "rows": [dataclasses.asdict(row) for row in self.rows],
            "seconds": round(time.perf_counter() - started, 1),
            "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "load_after": os.getloadavg(),
            "skipped": list(self.skipped),
        }
        if n == self.args.rss_size and kind in self.args.rss_kinds.split(","):
            result["rss"] = self.rss_children()
            log(kind, n, "rss done")
        return result

    def add(
        self,
        engine: str,
        setting: str,
        search: Any,
        params: dict[str, Any] | None = None,
        **extra: Any,
    ) -> SweepRow:
        row = sweep_measure(
            self.data, self.queries, self.truth, self.tune, search, engine, setting, params, **extra
        )
        self.rows.append(row)
        return row

    def scalar_scans(self) -> None:
        import faiss

        data, d = self.data, self.data.shape[1]
        fp16 = faiss.IndexScalarQuantizer(
            d, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
        )
        fp16.train(data[:1000])
        fp16.add(data)

        def search16(q: np.ndarray) -> list[int]:
            return [int(i) for i in fp16.search(q[None, :], peers.K)[1][0]]

        self.add(
            "exact f16",
            "FAISS SQ fp16 flat scan",
            search16,
            resident_bytes=fp16.sa_code_size() * len(data),
        )
        int8 = faiss.IndexScalarQuantizer(
            d, faiss.ScalarQuantizer.QT_8bit_direct_signed, faiss.METRIC_INNER_PRODUCT
        )
        scaled = np.empty_like(data)
        for start in range(0, len(data), 100_000):
            scaled[start : start + 100_000] = np.clip(
                np.round(data[start : start + 100_000] * 127), -127, 127
            )
        int8.train(scaled[:1000])
        int8.add(scaled)
        del scaled
        size8 = int8.sa_code_size() * len(data)

        def search8(q: np.ndarray, k: int = peers.K) -> list[int]:
            return [int(i) for i in int8.search(np.round(q * 127)[None, :], k)[1][0]]

        self.add(
            "exact int8",
            "x127, FAISS SQ 8bit_direct_signed flat scan",
            search8,
            resident_bytes=size8,
        )
        for depth in (20, 50, 100):
            self.add(
                "exact int8 + re-rank",
                f"int8 top {depth}, re-ranked by float32",
                lambda q, depth=depth: peers.rerank(self.data, q, search8(q, depth)),
                {"rerank": depth},
                resident_bytes=size8,
                mapped_bytes=self.data.nbytes,
                note="float32 rows of the candidates read from the vectors (mapped)",
            )

    def distinct_engines(self, distinct: np.ndarray) -> None:
        from annoy import AnnoyIndex

        groups = peers.Groups(distinct)
        first = np.full(int(distinct.max()) + 1, -1, dtype=np.int64)
        first[distinct[::-1]] = np.arange(len(distinct))[::-1]
        unique = np.ascontiguousarray(self.data[first])
        self.add(
            "exact (distinct)",
            f"np.einsum over {len(unique):,} distinct vectors",
            lambda q: groups.expand(peers.top_rows(np.einsum("ij,j->i", unique, q))),
            resident_bytes=unique.nbytes + 16 * len(distinct),
            note="images grouped under each distinct vector",
        )
        for trees in ints(self.args.trees):
            path = self.indexes / f"{self.prefix}-distinct-{trees}.ann"
            build_s = self.cached_build(
                path, lambda p, t=trees: peers.build_annoy(unique, p, t, self.args.build_threads)
            )
            index = AnnoyIndex(unique.shape[1], "angular")
            index.load(str(path), prefault=False)
            for search_k in ints(self.args.search_k):
                if search_k > 30 * len(unique) and search_k != ints(self.args.search_k)[0]:
                    continue  # beyond every node: the same as the smaller search_k
                self.add(
                    "annoy (distinct)",
                    f"{trees} trees, search_k {search_k:,}",
                    lambda q, k=search_k, index=index: groups.expand(
                        index.get_nns_by_vector(q.tolist(), peers.K, search_k=k)
                    ),
                    {"trees": trees, "search_k": search_k},
                    build_s=build_s,
                    resident_bytes=16 * len(distinct),
                    mapped_bytes=path.stat().st_size,
                    disk_bytes=path.stat().st_size,
                    note="images grouped under each distinct vector",
                )
            index.unload()

    def cached_build(self, path: Path, build: Any) -> float:
        """Build `path` unless cached; the build time (recorded beside it)."""
        meta = path.with_suffix(path.suffix + ".json")
        if path.is_file() and meta.is_file():
            return float(json.loads(meta.read_text())["build_s"])
        build_s = float(build(path))
        meta.write_text(json.dumps({"build_s": build_s}))
        return build_s

    def annoy(self) -> None:
        from annoy import AnnoyIndex

        n = len(self.data)
        large = n >= 1_000_000
        kind = self.prefix.split("-")[0]
        if large and kind not in self.args.annoy_large_kinds.split(","):
            self.skipped.append("full Annoy build (time; not in --annoy-large-kinds)")
            return
        all_trees = ints(self.args.trees)
        trees_list = ints(self.args.trees_large) if large else all_trees
        if large and trees_list != all_trees:
            self.skipped.append(
                f"Annoy at {size_label(n)} {kind}: only {trees_list} trees of "
                f"{all_trees} (build time)"
            )
        for trees in trees_list:
            path = self.indexes / f"{self.prefix}-{trees}.ann"
            build_s = self.cached_build(
                path, lambda p, t=trees: peers.build_annoy(self.data, p, t, self.args.build_threads)
            )
            index = AnnoyIndex(self.data.shape[1], "angular")
            index.load(str(path), prefault=False)
            for search_k in ints(self.args.search_k):
                self.add(
                    "annoy",
                    f"{trees} trees, search_k {search_k:,}",
                    lambda q, k=search_k, index=index: index.get_nns_by_vector(
                        q.tolist(), peers.K, search_k=k
                    ),
                    {"trees": trees, "search_k": search_k},
                    build_s=build_s,
                    mapped_bytes=path.stat().st_size,
                    disk_bytes=path.stat().st_size,
                    note=f"built in memory with {self.args.build_threads} threads, searched mapped",
                )
            index.unload()

    def ivf(self) -> None:
        import faiss
        from faiss.contrib.ivf_tools import add_preassigned

        data, (n, d) = self.data, self.data.shape
        nlist = max(16, int(4 * math.sqrt(n)))
        self.nlist = nlist
        flat_path = self.indexes / f"{self.prefix}-ivfflat-{nlist}.faiss"
        sq_path = self.indexes / f"{self.prefix}-ivfsq8-{nlist}.faiss"
        meta_path = self.indexes / f"{self.prefix}-ivf-{nlist}.json"
        train_points = min(n, self.args.train_max)
        if not (flat_path.is_file() and sq_path.is_file() and meta_path.is_file()):
            faiss.omp_set_num_threads(self.args.build_threads)
            times: dict[str, float] = {}
            sample = data[np.random.default_rng(0).choice(n, train_points, replace=False)]
            started = time.perf_counter()
            quantizer = faiss.IndexFlatIP(d)
            flat = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
            flat.train(sample)
            times["train_s"] = time.perf_counter() - started
            started = time.perf_counter()
            assign = np.empty(n, dtype=np.int64)
            for start in range(0, n, 100_000):
                assign[start : start + 100_000] = quantizer.search(
                    data[start : start + 100_000], 1
                )[1][:, 0]
            times["assign_s"] = time.perf_counter() - started
            started = time.perf_counter()
            add_preassigned(flat, data, assign)
            faiss.write_index(flat, str(flat_path))
            times["add_write_flat_s"] = time.perf_counter() - started
            started = time.perf_counter()
            sq = faiss.IndexIVFScalarQuantizer(
                faiss.clone_index(quantizer),
                d,
                nlist,
                faiss.ScalarQuantizer.QT_8bit,
                faiss.METRIC_INNER_PRODUCT,
            )
            sq.train(sample)  # the coarse quantizer is trained already: only the 8-bit ranges
            times["train_sq_s"] = time.perf_counter() - started
            started = time.perf_counter()
            add_preassigned(sq, data, assign)
            faiss.write_index(sq, str(sq_path))
            times["add_write_sq_s"] = time.perf_counter() - started
            del flat, sq, quantizer, assign
            faiss.omp_set_num_threads(1)
            meta_path.write_text(json.dumps(times))
        times = json.loads(meta_path.read_text())
        build_flat = times["train_s"] + times["assign_s"] + times["add_write_flat_s"]
        build_sq = (
            times["train_s"] + times["assign_s"] + times["train_sq_s"] + times["add_write_sq_s"]
        )
        self.ivf_times = {"nlist": nlist, "train_points": train_points, **times}
        centroids = nlist * d * 4
        note = (
            f"nlist {nlist}, trained on {train_points:,} points with "
            f"{self.args.build_threads} threads"
        )
        for engine, path, build_s in (
            ("faiss IVFFlat (mmap)", flat_path, build_flat),
            ("faiss IVF-SQ8 (mmap)", sq_path, build_sq),
        ):
            index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP)
            size = path.stat().st_size
            for nprobe in ints(self.args.nprobe):
                index.nprobe = nprobe

                def search(q: np.ndarray, index: Any = index, k: int = peers.K) -> list[int]:
                    return [int(i) for i in index.search(q[None, :], k)[1][0] if i >= 0]

                extra = {
                    "build_s": build_s,
                    "resident_bytes": centroids,
                    "mapped_bytes": size,
                    "disk_bytes": size,
                    "note": note,
                }
                params = {"nlist": nlist, "nprobe": nprobe, "train_points": train_points}
                self.add(engine, f"nlist {nlist}, nprobe {nprobe}", search, params, **extra)
                if engine.startswith("faiss IVF-SQ8"):
                    extra["mapped_bytes"] = size + self.data.nbytes
                    extra["note"] = (
                        note + "; float32 rows of the top 50 read from the vectors (mapped)"
                    )
                    self.add(
                        "faiss IVF-SQ8 + re-rank (mmap)",
                        f"nlist {nlist}, nprobe {nprobe}, re-rank 50",
                        lambda q, s=search: peers.rerank(self.data, q, s(q, k=50)),
                        {**params, "rerank": 50},
                        **extra,
                    )
            del index

    def hnsw(self) -> None:
        import hnswlib

        path = self.indexes / f"{self.prefix}-hnsw16.bin"
        data, (n, d) = self.data, self.data.shape

        def build(p: Path) -> float:
            started = time.perf_counter()
            index = hnswlib.Index(space="ip", dim=d)
            index.init_index(max_elements=n, M=16, ef_construction=100, random_seed=0)
            index.add_items(data, num_threads=self.args.build_threads)
            build_s = time.perf_counter() - started
            index.save_index(str(p))
            return build_s

        build_s = self.cached_build(path, build)
        index = hnswlib.Index(space="ip", dim=d)
        index.load_index(str(path), max_elements=n)
        index.set_num_threads(1)
        size = path.stat().st_size
        for ef in ints(self.args.ef):
            index.set_ef(max(ef, peers.K))
            self.add(
                "hnswlib",
                f"M 16, ef {ef}",
                lambda q: [int(i) for i in index.knn_query(q, k=peers.K)[0][0]],
                {"M": 16, "ef": ef, "ef_construction": 100},
                build_s=build_s,
                resident_bytes=size,
                disk_bytes=size,
                note=f"built with {self.args.build_threads} threads; all in memory",
            )

    def rss_children(self) -> list[dict[str, Any]]:
        """Each IVF variant memory-mapped in a fresh process, after many different queries."""
        texts = vectors.query_texts(self.args.rss_queries, seed=29, exclude=self.vecs.exclude)
        queries = self.vecs.embed(f"rss-queries-{len(texts)}", texts)
        qpath = self.args.work / f"rss-queries{self.vecs.smoke}.npy"
        np.save(qpath, queries)
        vpath = self.args.work / f"{self.prefix}.npy"
        results = []
        chosen = sweep_report.cheapest([dataclasses.asdict(r) for r in self.rows])
        for engine, name in (
            ("faiss IVFFlat (mmap)", "ivfflat"),
            ("faiss IVF-SQ8 (mmap)", "ivfsq8"),
            ("faiss IVF-SQ8 + re-rank (mmap)", "ivfsq8"),
        ):
            row = chosen.get(engine)
            nprobe = row["params"]["nprobe"] if row else 16
            path = self.indexes / f"{self.prefix}-{name}-{self.nlist}.faiss"
            spec = {
                "index": str(path),
                "queries": str(qpath),
                "nprobe": nprobe,
                "rerank_vectors": str(vpath) if "re-rank" in engine else None,
            }
            out = subprocess.run(
                [sys.executable, __file__, "--rss-child", json.dumps(spec)],
                capture_output=True,
                text=True,
                check=True,
            )
            measured = json.loads(out.stdout.strip().splitlines()[-1])
            results.append(
                {"engine": engine, "nprobe": nprobe, "queries": len(queries), **measured}
            )
        return results


def rss_child(spec_text: str) -> None:
    """In a fresh process: load one IVF index memory-mapped, answer every query, and report
    /proc/self/status before loading, after loading and after the queries."""
    import faiss

    spec = json.loads(spec_text)
    faiss.omp_set_num_threads(1)
    queries = np.load(spec["queries"])
    vectors_mm = np.load(spec["rerank_vectors"], mmap_mode="r") if spec["rerank_vectors"] else None
    before = peers.proc_status()
    index = faiss.read_index(spec["index"], faiss.IO_FLAG_MMAP)
    index.nprobe = spec["nprobe"]
    loaded = peers.proc_status()
    started = time.perf_counter()
    for query in queries:
        if vectors_mm is None:
            index.search(query[None, :], peers.K)
        else:
            rows = index.search(query[None, :], 50)[1][0]
            rows = np.sort(rows[rows >= 0])
            scores = np.asarray(vectors_mm[rows]) @ query
            rows[np.argsort(-scores)[: peers.K]]
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "before_load": before,
                "after_load": loaded,
                "after_queries": peers.proc_status(),
                "ms_per_query": 1000 * seconds / len(queries),
            }
        )
    )


# --- choosing and reporting -----------------------------------------------------------


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip(),
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.rss_child:
        rss_child(args.rss_child)
        return
    import faiss

    results: dict[str, Any] = {"runs": [], "results": []}
    if args.json and (args.resume or args.report_only) and args.json.is_file():
        results = json.loads(args.json.read_text())
    if not args.report_only:
        started = time.perf_counter()
        run: dict[str, Any] = {
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "argv": sys.argv[1:] if argv is None else argv,
            "machine": machine(),
            "faiss": faiss.__version__,
            "embedder": EMBEDDER,
        }
        results["runs"].append(run)
        vecs = Vectors(args)
        vecs.prepare()
        results["vectors"] = {**results.get("vectors", {}), **vecs.info}
        results.update(
            {
                "queries": {
                    "count": len(vecs.query_texts),
                    "examples": vecs.query_texts[:12],
                    "tuning": int(vecs.tune.sum()),
                    "held_out": int((~vecs.tune).sum()),
                },
            }
        )
        sweep = Sweep(args, vecs)
        done = {(r["kind"], r["size"]) for r in results["results"]}
        for n in ints(args.sizes):
            for kind in args.kinds.split(","):
                if (kind, n) in done:
                    continue
                log(f"--- {kind} at {n:,}")
                sweep.skipped = []
                result = sweep.run(kind, n)
                result["ivf"] = getattr(sweep, "ivf_times", {})
                result["run"] = len(results["runs"]) - 1
                results["results"] = [
                    r for r in results["results"] if (r["kind"], r["size"]) != (kind, n)
                ] + [result]
                run["timings"] = vecs.timings
                run["seconds"] = round(time.perf_counter() - started, 1)
                run["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
                run["load_at_end"] = os.getloadavg()
                if args.json:
                    args.json.write_text(json.dumps(results, indent=1))
                log(f"{kind} at {n:,}: {result['seconds']} s")
    if args.output:
        sweep_report.write(results, args.output)
    if args.json and not args.report_only:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
