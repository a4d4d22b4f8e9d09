"""Measure search: ingest rate, query latency through the mount and its parts, daemon
memory, and Annoy against exact search, as ratios taken in one run.

    .venv/bin/python scripts/bench_search.py [--images 200] [--vectors 100000]
                                             [--output docs/search-benchmarks.md]

1. Ingest: `cp -r` of N distinct photos (scikit-image's samples, cropped and flipped)
   into the mount and into a plain directory on the same disk (ratio), then the time
   from `cp` finishing to the last image being searchable (the queue drained).
2. Queries: `ls MOUNT/search/<q>/` for queries never asked before (embed + index +
   FUSE) and again (cached), beside the same searches in this process (embedder alone,
   index alone), and the `semfs search` command (which loads the models each time).
3. Memory: the daemon's resident set idle, after ingest and after the queries.
4. Index: clustered unit vectors, Annoy (25 trees, search_k 10,000, memory-mapped) against
   exact numpy on the same vectors: recall@10 and time per query.

Needs root and /dev/fuse. Everything lives in a temporary directory, unmounted and removed
at the end.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.resources
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parent.parent
SAMPLES = Path(str(importlib.resources.files("skimage") / "data"))
PHOTOS = ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png",
          "camera.png", "horse.png", "moon.png", "coins.png", "hubble_deep_field.jpg"]  # fmt: skip
QUERIES = [
    "a cup of coffee", "a cat", "a motorbike", "a rocket launch", "a man with a camera",
    "coins on a table", "a horse", "the moon", "stars in the night sky", "an astronaut",
    "snow on mountains", "a red car", "a plate of food", "a dog on a beach", "a bicycle",
    "a city at night", "flowers in a garden", "a child playing", "a boat on a lake",
    "a bird in a tree",
]  # fmt: skip


def semfs(*args: object) -> str:
    result = subprocess.run([sys.executable, "-m", "semfs", *map(str, args)],
                            capture_output=True, text=True, check=True)  # fmt: skip
    return result.stdout


def make_photos(directory: Path, count: int) -> None:
    """`count` distinct JPEGs: crops of the sample photos at shifting offsets, some flipped."""
    directory.mkdir(parents=True)
    sources = [Image.open(SAMPLES / name).convert("RGB") for name in PHOTOS]
    for i in range(count):
        image = sources[i % len(sources)]
        shift = (i // len(sources)) * 3
        crop = image.crop((shift, shift, image.width - shift, image.height - shift))
        if i % 2:
            crop = ImageOps.mirror(crop)
        crop.save(directory / f"photo{i:04d}.jpg", quality=90)


def timed(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def queue_length(store: Path) -> int:
    import sqlite3

    db = sqlite3.connect(f"file:{store}/.semfs/catalog.sqlite3?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT count(*) FROM ingest_queue").fetchone()[0])
    finally:
        db.close()


def wait_until(predicate: Callable[[], bool], timeout: float = 600) -> float:
    started = time.perf_counter()
    while not predicate():
        if time.perf_counter() - started > timeout:
            raise TimeoutError("the benchmark waited too long")
        time.sleep(0.02)
    return time.perf_counter() - started


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def bench_mount(work: Path, images: int) -> list[str]:
    source, plain, store, mountpoint = (work / n for n in ("source", "plain", "store", "mnt"))
    make_photos(source, images)
    size_mib = sum(f.stat().st_size for f in source.iterdir()) / (1 << 20)
    store.mkdir()
    mountpoint.mkdir()
    plain.mkdir()
    semfs("mount", store, mountpoint)
    pid = int((store / ".semfs" / "mount.lock").read_text().split()[0])
    rows: list[str] = []
    try:
        # Idle: after mount the embedder and index load in the background.
        wait_until(lambda: os.listdir(mountpoint / "search" / "warm up") is not None)
        idle = rss_mib(pid)
        native = timed(
            lambda: subprocess.run(["cp", "-r", str(source), str(plain / "in")], check=True)
        )
        mounted = timed(
            lambda: subprocess.run(["cp", "-r", str(source), str(mountpoint / "in")], check=True)
        )
        searchable = wait_until(lambda: queue_length(store) == 0)
        after_ingest = rss_mib(pid)
        rows += [
            f"| `cp -r` {images} photos ({size_mib:.0f} MiB) | {ms(native)} | {ms(mounted)} | "
            f"**{mounted / native:.1f}x** | into the mount vs the plain directory |",
            f"| `cp` finished to last image searchable | - | {ms(searchable)} | - | "
            f"{images / searchable:.1f} images/s captioned, embedded and indexed |",
        ]

        search = mountpoint / "search"
        cold = [timed(lambda q=q: os.listdir(search / q)) for q in QUERIES]
        warm = [timed(lambda q=q: os.listdir(search / q)) for q in QUERIES]
        after_queries = rss_mib(pid)

        # One image into an idle mount: how soon does an open query directory list it?
        coffee = Image.open(SAMPLES / "coffee.png").convert("RGB")
        coffee.crop((7, 5, coffee.width - 9, coffee.height - 4)).save(work / "new.jpg", quality=88)
        query = search / "a cup of coffee"
        os.listdir(query)
        shutil.copy(work / "new.jpg", mountpoint / "new.jpg")
        single = wait_until(lambda: "new.jpg" in os.listdir(query), timeout=60)

        sys.path.insert(0, str(REPO))
        from semfs.catalog import Catalog
        from semfs.config import Settings
        from semfs.engine import Engine

        settings = Settings.load(store)
        catalog = Catalog.open(settings.catalog_path)
        engine = Engine(settings, catalog)
        engine.load(read_only=True)
        embed = [timed(lambda q=q: engine.embedder.embed([q + " (x)"])) for q in QUERIES]
        for q in QUERIES:  # fills the query cache: what follows times index + catalog
            engine.searcher.search(q, 50, engine.max_distance)
        lookup = [timed(lambda q=q: engine.searcher.search(q, 50, engine.max_distance))
                  for q in QUERIES]  # fmt: skip
        catalog.close()
        cli = [timed(lambda q=q: semfs("search", store, q)) for q in QUERIES[:5]]
        cli_own = [
            timed(lambda q=q: semfs("search", store, q, "--max-distance", "1.15"))
            for q in QUERIES[:3]
        ]

        def latency(values: list[float]) -> str:
            return f"{ms(statistics.median(values))} / {ms(percentile(values, 0.95))}"

        rows += [
            f"| one photo copied into an idle mount, until `ls search/a cup of coffee/` "
            f"lists it | - | {ms(single)} | - | tracker, queue, caption, embed, index; "
            f"polled every 20 ms |",
            f"| `ls search/<new query>/` (p50 / p95) | - | {latency(cold)} | - | "
            f"{len(QUERIES)} queries never asked before: embed + index + FUSE |",
            f"| `ls search/<same query>/` again | - | {latency(warm)} | - | cached result |",
            f"| of which: embedding the query | - | {latency(embed)} | - | in-process |",
            f"| of which: index + catalog check | - | {latency(lookup)} | - | in-process, "
            f"{images} vectors (exact delta) |",
            f"| `semfs search STORE <q>` while mounted | - | {latency(cli)} | - | a new "
            f"process that reads the answer from the mount |",
            f"| `semfs search STORE <q> --max-distance 1.15` | - | {latency(cli_own)} | - | "
            f"computes it itself: loads the embedder every time |",
            f"| daemon RSS idle / after ingest / after queries | - | {idle[0]:.0f} / "
            f"{after_ingest[0]:.0f} / {after_queries[0]:.0f} MiB | - | "
            f"peak {after_queries[1]:.0f} MiB |",
        ]
    finally:
        subprocess.run([sys.executable, "-m", "semfs", "unmount", str(mountpoint)], check=False)
    return rows


def clustered_unit_vectors(count: int, dims: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(10, count // 1000), dims)).astype(np.float32)
    data = centres[rng.integers(0, len(centres), count)] + 0.6 * rng.normal(
        size=(count, dims)
    ).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    return data


def bench_index(work: Path, count: int, dims: int = 384, queries: int = 200) -> list[str]:
    data = clustered_unit_vectors(count, dims, seed=1)
    probes = clustered_unit_vectors(queries, dims, seed=2)
    started = time.perf_counter()
    annoy = AnnoyIndex(dims, "angular")
    annoy.on_disk_build(str(work / "bench.ann"))
    for i, vector in enumerate(data):
        annoy.add_item(i, vector.tolist())
    annoy.build(25, n_jobs=1)
    build = time.perf_counter() - started
    annoy.unload()
    annoy.load(str(work / "bench.ann"), prefault=False)
    exact_times, annoy_times, recalls = [], [], []
    for probe in probes:
        started = time.perf_counter()
        truth = np.argpartition(-(data @ probe), 10)[:10]
        exact_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        found = annoy.get_nns_by_vector(probe.tolist(), 10, search_k=10_000)
        annoy_times.append(time.perf_counter() - started)
        recalls.append(len(set(found) & set(truth.tolist())) / 10)
    exact, approx = statistics.median(exact_times), statistics.median(annoy_times)
    size = (work / "bench.ann").stat().st_size / (1 << 20)
    return [
        f"| top-10 of {count:,} vectors, exact numpy | - | {ms(exact)} | - | recall 1.00 |",
        f"| same with Annoy (25 trees, search_k 10,000, mmap) | - | {ms(approx)} | "
        f"**{exact / approx:.1f}x faster** | recall@10 {statistics.mean(recalls):.2f}; "
        f"built in {build:.0f} s, {size:.0f} MiB on disk |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="semfs-bench-") as temporary:
        work = Path(temporary)
        rows = bench_mount(work, args.images)
        rows += bench_index(work, args.vectors)
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    report = "\n".join([
        "# Search benchmarks",
        "",
        "Measured by `scripts/bench_search.py` (see its docstring for what each row does).",
        "",
        f"- Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, commit {commit}",
        f"- {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}",
        "- Models: classifier:efficientnet-lite0 captioner, all-MiniLM-L6-v2 embedder",
        f"- Total runtime: {time.time() - started:.0f} s",
        "",
        "| Measure | Plain directory | semfs | Ratio | Notes |",
        "|---|--:|--:|--:|---|",
        *rows,
        "",
        "## Reading the numbers",
        "",
        "- Copying pays the passthrough's per-file cost (see benchmarks.md), never the "
        "models': `cp` returns before any image is captioned.",
        "- A new query costs one embedding (most of it) plus an exact scan of the delta or "
        "an Annoy lookup; the same query again is answered from the view's cache until the "
        "index changes.",
        "- The daemon's memory is mostly the models (torch, the embedder, and after the "
        "first ingest the captioner), not the index: the Annoy base is memory-mapped and "
        "the delta holds at most `rebuild_threshold` vectors.",
        "- Annoy's recall depends on the data: these synthetic clustered vectors are harder "
        "than the ones DESIGN.md measured (.98 at 100 k with the same settings). The "
        "evaluation issue measures recall on real caption vectors and sets `search_k` "
        "from that.",
        "",
    ])  # fmt: skip
    print(report)
    if args.output:
        args.output.write_text(report)


if __name__ == "__main__":
    main()
