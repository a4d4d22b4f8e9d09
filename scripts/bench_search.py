"""Search at scale: `ls MOUNT/search/<new query>/` with 10 k, 100 k and 1 M indexed images,
busy and idle, its parts, `semfs search`, startup, daemon memory, and the recall of the
default index; every figure measured in one run.

    .venv/bin/python scripts/bench_search.py [--sizes 10000,100000,1000000]
        [--output docs/benchmarks-search.md] [--json results.json] [--smoke]

1. Vectors: synthetic caption vectors around real caption embeddings (see
   benchlib/vectors.py), made by the embedder the mount runs, so real queries find
   them; and random directions, the worst case, for the index alone.
2. Stores: N empty images with their catalog rows, and a base index built by the
   daemon's own rebuild with the default settings (FAISS IVF from 80,000 vectors;
   benchlib/store.py): no image is captioned, but the mount reconciles, loads and
   searches them as it would real ones.
3. Recall of the default index: the store's index, loaded as the daemon loads it, against
   an exact scan of the same vectors (recall@10 of 100 new queries).
4. Mount (benchlib/mount.py): startup, new and repeated queries end to end, the daemon's
   own search time, `semfs search` through the mount and unmounted, memory; then query
   encoding and lookup apart in this process.
5. States (--states, default busy,idle; also stress): new queries through one more mount
   in blocks of --block-queries, in the given order, the daemon
   - busy: --busy-photos real photos (scripts/bench_ingest.py's, 1,200-1,600 px) copied
     into MOUNT/bench-busy-<round>-<block>/ just before, so that ingest decodes, captions,
     embeds them and gives them facets during the block, as a user's daemon does after a
     `cp -r`; no other queue is filled (the classifier captioner gives each photo's
     image features with its caption; their text, OCR, waits for the idle pass);
   - idle: every queue empty, and ingest's threads resting (the bench waits for an idle
     pass, such as a new store's EXIF facts, to end);
   - stress: every image's features queued again, so that the features backfill fails on
     the store's empty images at thousands a second: a worst case of Python-level churn
     (catalog reads and writes, logging), not what a user's daemon does.
   Every queue (ingest, features, text) is counted before and after each block, with the
   load average and the CPU time of ingest's threads, so that the state is checked, not
   assumed (benchlib/mount.py state_held: busy holds when photos still waited at the end
   and ingest worked during the block). The photos are removed through the mount
   afterwards (the catalog follows: a --work store stays as it was). The queries of a
   block run back to back, or --pause-ms apart (a person's pace: caches go cold
   between them). Then --memory-queries more new queries, idle, and the daemon's memory
   after them.
   --states-only measures only 3 and 5: with --json, the issue-21 targets (recall_at_10,
   ls_p50_ms / ls_p95_ms for each state measured, memory) per size; with --output, only a
   plot of every query per size and state (<output>-states.png), not the page. --round
   varies the queries and photos between runs on one --work.

--peers: also Annoy, hnswlib and FAISS as libraries on the same vectors (benchlib/
peers.py; scripts/bench_index_sweep.py is the full sweep of index designs).
--smoke: 2,000 images, a few queries, 80 busy photos; for CI.
Needs root and /dev/fuse. Works in a temporary directory (or --work, kept and reused).
Building a store takes about 1 minute at 100 k and 10 at 1 M on 2 cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_ingest
import numpy as np
from benchlib import peers, report, vectors
from benchlib.mount import (
    BUSY_PREFIX,
    STATES,
    Block,
    measure_mount,
    measure_parts,
    measure_states,
    p50,
    p95,
)
from benchlib.store import annoy_file, build_store

import semfs
from semfs.catalog.database import Catalog
from semfs.config import INDEX_ENGINES, QUERY_ENCODERS, Settings
from semfs.ml.embedder import make_embedder
from semfs.search.engine import index_options
from semfs.search.index import VectorIndex

L3 = "onnx:paraphrase-MiniLM-L3-v2"
L6 = "sentence-transformers:all-MiniLM-L6-v2"
SHORT = {L3: "L3 (onnx)", L6: "L6 (default)"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--uniform-sizes", default="10000,100000,1000000",
                        help="sizes of the random-direction worst case (index alone)")  # fmt: skip
    parser.add_argument("--embedder", default=L3, help="embedder of the mounts at every size")
    parser.add_argument("--default-embedder-size", type=int, default=100_000,
                        help="also mount this size with L6, the default (0: skip)")  # fmt: skip
    parser.add_argument("--hnsw-max", type=int, default=1_000_000,
                        help="largest size given to hnswlib and FAISS")  # fmt: skip
    parser.add_argument("--queries", type=int, default=41, help="new queries per mount")
    parser.add_argument("--recall-queries", type=int, default=100)
    parser.add_argument("--cli-queries", type=int, default=5)
    parser.add_argument("--pool", type=int, default=vectors.POOL_SIZE,
                        help="distinct captions the synthetic vectors vary around")  # fmt: skip
    parser.add_argument("--output", type=Path, help="Markdown report (plots beside it)")
    parser.add_argument("--json", type=Path, help="raw results")
    parser.add_argument("--work", type=Path, help="keep stores here and reuse them")
    parser.add_argument("--smoke", action="store_true", help="tiny and quick, for CI")
    parser.add_argument(
        "--states",
        default="busy,idle",
        help="busy,idle,stress,...: new queries in these states ('' for none)",
    )
    parser.add_argument(
        "--busy-photos",
        type=int,
        default=600,
        help="photos copied in before each busy block (ingest takes ~25 a second)",
    )
    parser.add_argument(
        "--states-only",
        action="store_true",
        help="only the default index's recall and the --states blocks",
    )
    parser.add_argument(
        "--memory-queries",
        type=int,
        default=1_000,
        help="new queries before the daemon's memory is read (states mount)",
    )
    parser.add_argument("--peers", action="store_true", help="also the ANN libraries")
    parser.add_argument(
        "--profile",
        help="the states mount's profile (low-memory); its "
        "embedder stays --embedder: the store's vectors are that one's",
    )
    parser.add_argument(
        "--query-encoder",
        choices=QUERY_ENCODERS,
        help="the states mount's query_encoder setting (default: the store's, float)",
    )
    parser.add_argument(
        "--engine",
        default="auto",
        choices=INDEX_ENGINES,
        help="index_engine of the stores (written in their config.toml)",
    )
    parser.add_argument("--block-queries", type=int, default=20)
    parser.add_argument(
        "--pause-ms",
        type=float,
        default=0.0,
        help="pause between two --states queries (0: back to back)",
    )
    parser.add_argument("--round", type=int, default=0, help="seeds the --states queries")
    parser.add_argument("--peers-only", action="store_true", help="no mount: the index alone")
    parser.add_argument("--from-json", type=Path, help="only write the report of saved results")
    args = parser.parse_args()
    if args.smoke:
        args.sizes, args.uniform_sizes, args.default_embedder_size = "2000", "2000", 0
        args.queries, args.recall_queries, args.cli_queries, args.pool = 6, 10, 1, 1000
        # Blocks of 40 (~0.25 s at 2 k): long enough to see ingest work in the busy one.
        args.block_queries, args.memory_queries, args.busy_photos = 40, 10, 80
    return args


def sizes(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def summarise(mount: Any, parts: Any) -> dict[str, float]:
    new_p50 = p50(mount.new)
    daemon = [t for t in mount.in_daemon if not math.isnan(t)]
    return {
        "new_p50": new_p50, "new_p95": p95(mount.new),
        "daemon_p50": p50(daemon), "fuse_p50": new_p50 - p50(daemon),
        "encode_p50": p50(parts.encode), "lookup_p50": p50(parts.lookup),
        "index_p50": p50(parts.index_only), "again_p50": p50(mount.again),
        "cli_p50": p50(mount.cli), "cli_own_p50": p50(parts.cli_own),
    }  # fmt: skip


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.embedders: dict[str, Any] = {}
        self.pools: dict[str, tuple[np.ndarray, list[str]]] = {}
        self.results: dict[str, Any] = {
            "runs": [],
            "states": [],
            "peers": {},
            "timings": {},
            "targets": {},
        }
        recall_texts = vectors.query_texts(args.recall_queries, seed=0)
        self.recall_texts = recall_texts
        self.asked: set[str] = set(recall_texts)

    def embedder(self, spec: str) -> Any:
        if spec not in self.embedders:
            self.embedders[spec] = make_embedder(spec)
        return self.embedders[spec]

    def pool(self, spec: str) -> tuple[np.ndarray, list[str]]:
        if spec not in self.pools:
            captions = vectors.caption_pool(np.random.default_rng(0), self.args.pool)
            started = time.perf_counter()
            embed = self.embedder(spec).embed
            # In batches: one batch pads every caption to the longest and runs slower.
            pool = np.concatenate(
                [embed(captions[i : i + 64]) for i in range(0, len(captions), 64)]
            )
            self.pools[spec] = (pool, captions)
            self.results["timings"][f"embedding the caption pool ({SHORT.get(spec, spec)})"] = (
                time.perf_counter() - started
            )
        return self.pools[spec]

    def new_queries(self, count: int, seed: int) -> list[str]:
        found = vectors.query_texts(count, seed, exclude=self.asked)
        self.asked.update(found)
        return found

    def run_size(self, size: int, spec: str, with_peers: bool) -> None:
        started = time.perf_counter()
        pool, captions = self.pool(spec)
        collection = vectors.realistic(pool, captions, size, seed=size)
        root = self.work / f"realistic-{size}-{spec.replace(':', '-')}-{self.args.engine}"
        root.mkdir(exist_ok=True)
        root = root.resolve()  # semfs mount names the mountpoint by its real path
        built = build_store(root, collection, self.embedder(spec).name, self.args.engine)
        print(f"[{size}] store built: {built}", flush=True)
        if spec == self.args.embedder:
            self.engine_recall(size, spec, built.store, collection.vectors)
        if with_peers and (self.args.peers or self.args.peers_only):
            self.peers(f"{report.size_name(size)} caption-like", collection.vectors,
                       spec, annoy_file(built), built.base_seconds, size)  # fmt: skip
        del collection
        if self.args.peers_only:
            return
        if self.args.states_only:
            self.run_states(size, spec, built.store, root / "mnt")
            return
        queries = self.new_queries(self.args.queries, seed=size + 1)
        mount = measure_mount(built.store, root / "mnt", spec, queries, self.args.cli_queries)
        print(f"[{size}] mount: {mount.new[:3]} ...", flush=True)
        parts = measure_parts(built.store, spec, self.new_queries(self.args.queries, size + 2),
                              cli_own=min(3, self.args.cli_queries))  # fmt: skip
        self.results["runs"].append({
            "size": size, "embedder": spec, "embedder_short": SHORT.get(spec, spec),
            "built": {**dataclasses.asdict(built), "store": str(built.store)},
            "mount": dataclasses.asdict(mount), "parts": dataclasses.asdict(parts),
            "summary": summarise(mount, parts), "seconds": time.perf_counter() - started,
        })  # fmt: skip
        if self.args.states and spec == self.args.embedder:
            self.run_states(size, spec, built.store, root / "mnt")
        if self.args.work is None:
            shutil.rmtree(root)

    def engine_recall(self, size: int, spec: str, store: Path, data: np.ndarray) -> None:
        """Recall@10 of the store's own index, loaded as the daemon loads it (read-only),
        against an exact scan of the same vectors."""
        settings = Settings.load(store, embedder=spec)
        catalog = Catalog.open(settings.catalog_path)
        try:
            index = VectorIndex(settings.index_dir, self.embedder(spec).name,
                                data.shape[1], index_options(settings))  # fmt: skip
            index.load(catalog, tidy=False)
            queries = self.embedder(spec).embed(self.recall_texts)
            truth = peers.exact_truth(data, queries)
            found, times = [], []
            for row, query in enumerate(queries):
                started = time.perf_counter()
                shortlist = index.search(query, 10)
                times.append(time.perf_counter() - started)
                rows = [c.file_id - 1 for c in shortlist.merged()[:10]]  # file id = row + 1
                found.append(peers.recall(data, query, rows, truth.limits[row]))
        finally:
            catalog.close()
        target = self.results["targets"].setdefault(str(size), {})
        target.update(engine=index.base_kind, recall_at_10=float(np.mean(found)),
                      index_p50_ms=p50(times) * 1000, recall_queries=len(queries))  # fmt: skip
        print(f"[{size}] default index ({index.base_kind}): recall@10 {np.mean(found):.3f}, "
              f"index p50 {p50(times) * 1000:.2f} ms", flush=True)  # fmt: skip

    def run_states(self, size: int, spec: str, store: Path, mountpoint: Path) -> None:
        states = [s.strip() for s in self.args.states.split(",") if s.strip()]
        assert set(states) <= set(STATES), f"--states: {states}, known: {list(STATES)}"
        seed = size + 1000 * (self.args.round + 1)
        with tempfile.TemporaryDirectory(prefix="busy-photos-", dir=self.work) as photos:
            blocks = [Block(state, self.new_queries(self.args.block_queries, seed + i),
                            self.busy_photos(Path(photos), i, seed + i) if state == "busy"
                            else None, self.args.pause_ms / 1000)
                      for i, state in enumerate(states)]  # fmt: skip
            memory = self.new_queries(self.args.memory_queries, seed + 500)
            config = Settings.load(store).state_dir / "config.toml"
            kept = config.read_text() if config.exists() else ""
            mount_only = ""  # for this mount only (the embedder stays --embedder)
            if self.args.profile:
                mount_only += f'profile = "{self.args.profile}"\n'
            if self.args.query_encoder:
                mount_only += f'query_encoder = "{self.args.query_encoder}"\n'
            config.write_text(mount_only + kept)
            try:
                found = measure_states(store, mountpoint, spec, blocks, memory)
            finally:
                config.write_text(kept)
        summary = {state: self.state_summary(size, state, found.blocks)
                   for state in STATES if state in states}  # fmt: skip
        print(f"[{size}] daemon semfs: {found.daemon_semfs}; catalog files "
              f"{found.files_at_start:,} before, {found.files_at_end:,} after",
              flush=True)  # fmt: skip
        target = self.results["targets"].setdefault(str(size), {})
        for state, measured in summary.items():
            target[state] = {
                "ls_p50_ms": measured["new_p50"] * 1000,
                "ls_p95_ms": measured["new_p95"] * 1000,
                "n": measured["n"],
                "state_held": measured["state_held"],
                "pause_ms": self.args.pause_ms,  # between queries (0: back to back)
            }
        if found.memory_queries:
            target["memory_mib"] = {"after_queries": found.memory_queries,
                                    **found.memory_after}  # fmt: skip
        target["profile"] = self.args.profile or "default"
        target["query_encoder"] = self.args.query_encoder or Settings.query_encoder
        self.results["states"].append({"size": size, "embedder": spec, "summary": summary,
                                       **dataclasses.asdict(found)})  # fmt: skip

    def busy_photos(self, directory: Path, block: int, seed: int) -> Path:
        """The photos a busy block copies in, made before the mount (distinct bytes for
        every block, round and size: no caption reused by content hash)."""
        photos = directory / f"{BUSY_PREFIX}{self.args.round}-{block}"
        bench_ingest.make_photos(photos, self.args.busy_photos, seed)
        return photos

    @staticmethod
    def state_summary(size: int, state: str, blocks: list[dict[str, Any]]) -> dict[str, Any]:
        mine = [b for b in blocks if b["state"] == state]
        times = [t for b in mine for t in b["new"]]
        daemon = [t for b in mine for t in b["in_daemon"] if not math.isnan(t)]
        held = all(b["state_held"] for b in mine)
        queues = [(b["queues_before"], b["queues_after"]) for b in mine]
        loads = [round(b["load_average"][0], 2) for b in mine]
        print(f"[{size}] {state}: new query p50 {p50(times) * 1000:.1f} ms, p95 "
              f"{p95(times) * 1000:.1f} ms (n {len(times)}), in the daemon p50 "
              f"{p50(daemon) * 1000:.1f} ms; queues before -> after each block {queues}, "
              f"load {loads}: {'' if held else 'NOT '}{state} throughout", flush=True)  # fmt: skip
        return {"new_p50": p50(times), "new_p95": p95(times), "n": len(times),
                "daemon_p50": p50(daemon), "daemon_p95": p95(daemon), "queues": queues,
                "load_average": loads, "state_held": held}  # fmt: skip

    def peers(self, label: str, data: np.ndarray, spec: str, annoy_path: Path | None,
              annoy_build: float, size: int) -> None:  # fmt: skip
        started = time.perf_counter()
        queries = self.embedder(spec).embed(self.recall_texts)
        truth = peers.exact_truth(data, queries)
        trees = Settings.index_trees
        found = [peers.exact_numpy(truth)]
        if annoy_path is not None:
            found += peers.annoy(data, queries, truth, annoy_path, annoy_build, trees)
        else:
            found += peers.annoy_fresh(data, queries, truth, self.work, trees)
        if size <= self.args.hnsw_max and annoy_path is not None:
            found += peers.hnswlib_peer(data, queries, truth)
            found += peers.faiss_peers(data, queries, truth)
        self.results["peers"][label] = [dataclasses.asdict(r) for r in found]
        self.results["timings"][f"index peers, {label}"] = time.perf_counter() - started
        print(f"[{label}] peers: {[(r.method, r.setting, round(r.recall, 3)) for r in found]}",
              flush=True)  # fmt: skip

    def run_uniform(self, size: int) -> None:
        dims = self.embedder(self.args.embedder).dimensions
        collection = vectors.uniform(size, dims, seed=size + 7)
        self.peers(f"{report.size_name(size)} random directions", collection.vectors,
                   self.args.embedder, None, 0.0, size)  # fmt: skip


def render(results: dict[str, Any], output: Path | None) -> str:
    plots = report.plot(results, output.with_suffix("")) if output else []
    meta = results["meta"]
    text = "\n".join([
        "# Search at scale",
        "",
        "Measured by `scripts/bench_search.py` (its docstring and `scripts/benchlib/` say "
        "what each figure is); generated from one run, except the Findings at the end.",
        "",
        f"- Date: {meta['date']} UTC, commit {meta['commit']}; total runtime "
        f"{meta['runtime_s'] / 60:.1f} min",
        f"- {meta['cpus']} CPUs shared with other jobs, {meta['platform']}, Python "
        f"{meta['python']}; load average at the end {' '.join(meta.get('load_average', []))}; "
        f"{meta['args']}",
        "- Embedders: " + "; ".join(f"{k} = {v}" for k, v in meta.get("embedders", {}).items()),
        f"- Index settings: index_engine {Settings.index_engine} (an exact scan under "
        f"80,000 vectors, FAISS IVF-Flat with 4 sqrt(n) lists and nprobe "
        f"{Settings.index_nprobe} above); top_k {Settings.top_k}",
        "- Vectors: caption-like (perturbed embeddings of 5,000 ImageNet-label captions, "
        "Zipf popularity) unless marked random; queries are natural phrases never asked "
        "before, encoded by the real embedder.",
        "",
        "## New-query latency and its parts",
        "",
        "End to end = `os.listdir(MOUNT/search/<q>)` of a query not asked before; *in the "
        "daemon* = the search time it logs (encoding + index + catalog); *FUSE and the "
        "rest* = the difference. Encoding, lookup and index alone were timed in a separate "
        "process on the same store.",
        "",
        *report.latency_table(results["runs"]),
        "",
        *[f"![{p.stem}]({p.name})" for p in plots[:1]],
        "",
        "## The targets of issue 21, with the default settings",
        "",
        "Recall@10 of the store's own index (loaded as the daemon loads it) against an "
        "exact scan, over "
        f"{results['meta']['recall_queries']} new queries; `ls search/<new q>/` through a "
        "mount, idle (every queue empty), busy (ingest captioning real photos just copied "
        "in) and, if measured, under stress (the features backfill failing on the store's "
        "empty images thousands of times a second: a worst case of Python-level churn, not "
        "a user's daemon, and not what the targets are about); the daemon's memory after "
        "more new queries (how many: in the table).",
        "",
        *report.issue_targets(results.get("targets", {})),
        "",
        *(["## Index: Annoy against exact search and other libraries", "",
           f"{results['meta']['recall_queries']} queries, top 10, one query at a time on one "
           "thread.", "", *report.peers_table(results["peers"]), "",
           *[f"![{p.stem}]({p.name})" for p in plots[1:2]], ""]
          if results["peers"] else []),
        "## Memory and disk",
        "",
        *report.memory_table(results["runs"]),
        "",
        *[f"![{p.stem}]({p.name})" for p in plots[2:3]],
        "",
        "## Startup",
        "",
        "From `semfs mount` starting to: the command returning, a listing of the mount "
        "root, the first `ls search/<q>/` answered (it waits for the embedder and index); "
        "the reconcile scan of the store as the daemon logs it (it runs in the background, "
        "the mount answers meanwhile).",
        "",
        *report.startup_table(results["runs"]),
        "",
        "## Targets",
        "",
        *report.targets(results["runs"], results["peers"], Settings.index_search_k),
        "",
        "Other timings: " + "; ".join(f"{k} {v:.1f} s" for k, v in
                                       results["timings"].items()),
        "",
    ])  # fmt: skip
    if output is not None:
        text += "\n" + report.kept_findings(output)
    return text


def main() -> None:
    args = parse_args()
    if args.from_json:
        text = render(json.loads(args.from_json.read_text()), args.output)
        if args.output:
            args.output.write_text(text)
        return
    started = time.time()
    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="semfs-bench-", dir=args.work) as temporary:
        work = args.work or Path(temporary)
        bench = Bench(args, work)
        for size in sizes(args.sizes):
            bench.run_size(size, args.embedder, with_peers=True)
        if args.default_embedder_size and not args.states_only:
            bench.run_size(args.default_embedder_size, L6, with_peers=False)
        for size in sizes(args.uniform_sizes) if args.peers else []:
            bench.run_uniform(size)
    package = Path(semfs.__file__).parent  # PYTHONPATH may name another checkout
    commit = subprocess.run(["git", "-C", str(package), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    results = bench.results
    results["meta"] = {
        "date": f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M}", "commit": commit,
        "cpus": os.cpu_count(), "platform": platform.platform(),
        "python": platform.python_version(), "runtime_s": time.time() - started,
        "recall_queries": args.recall_queries,
        "embedders": {SHORT.get(spec, spec): f"{spec} ({type(e).__module__}.{type(e).__name__})"
                      for spec, e in bench.embedders.items()},
        "args": " ".join(sys.argv[1:]) or "default arguments",
        "load_average": Path("/proc/loadavg").read_text().split()[:3],
    }  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    print(json.dumps({"targets": results["targets"]}, indent=1))
    if args.states_only:
        if args.output:  # the page is written by a whole run; its plot of the states is not
            print(f"wrote {report.plot_states(results, args.output.with_suffix(''))}")
        return
    text = render(results, args.output)
    print(text)
    if args.output:
        args.output.write_text(text)


if __name__ == "__main__":
    main()
