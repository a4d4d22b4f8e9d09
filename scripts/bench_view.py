"""How fast the search view answers what a file manager asks, against the plain store.

    .venv/bin/python scripts/bench_view.py [--photos 300] [--saved 200] [--json FILE]

Builds a store of distinct photos (crops of scikit-image's samples), mounts it, waits
until all are indexed, saves `--saved` queries, then times (median of many runs, in ms):
listing `search/` (the saved queries), listing a new query (embedding + index) and the
same query again (cached), `ls -l` of a query's results (lookup + getattr of each), the
probes a file manager makes in every folder (`.hidden`, `desktop.ini`, ...) in `search/`
and in a query, first time and again; and beside them listing the store's folder of
photos through the mount and in the backing directory. Needs root and /dev/fuse.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

SAMPLES = ("chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png", "motorcycle_left.png")
PROBES = (".hidden", ".directory", "desktop.ini", "folder.jpg", "Thumbs.db", ".DS_Store")
QUERIES = ("a cat", "a cup of coffee", "a rocket", "a motorbike", "a person", "a photo")


def build(store: Path, count: int) -> None:
    data = Path(str(importlib.resources.files("skimage") / "data"))
    sources = [Image.open(data / name).convert("RGB") for name in SAMPLES]
    folder = store / "photos"
    folder.mkdir(parents=True)
    for i in range(count):
        source = sources[i % len(sources)]
        # A crop of its own for each photo (up to 12,000): copies would reuse the first's
        # caption and features, which would flatter the ingest rates.
        turn = i // len(sources)
        x, y = turn % 60, (turn // 60) % 40
        source.crop((x, y, x + 200, y + 150)).save(folder / f"photo{i:04d}.jpg", quality=85)


def median_ms(action: Callable[[], object], runs: int = 30) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def once_ms(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def ls_l(folder: Path) -> None:
    for name in os.listdir(folder):
        os.lstat(folder / name)


def probe_all(folder: Path) -> None:
    for name in PROBES:
        try:
            os.stat(folder / name)
        except FileNotFoundError:
            continue
        raise AssertionError(f"{folder / name} exists")


def semfs(*args: str | Path) -> None:
    subprocess.run([sys.executable, "-m", "semfs", *map(str, args)], check=True,
                   capture_output=True)  # fmt: skip


def measure(store: Path, mountpoint: Path, saved: int) -> dict[str, float]:
    semfs("mount", store, mountpoint)
    try:
        semfs("index", store, "--quiet")  # follows the daemon until all are indexed
        search = mountpoint / "search"
        for i in range(saved):
            (search / f"saved query {i} {QUERIES[i % len(QUERIES)]}").mkdir()
        os.listdir(search / "warm up the embedder")
        figures = {
            "ls search/ (saved queries)": median_ms(lambda: os.listdir(search)),
            "ls search/<new query>/ (first time)": statistics.median(
                once_ms(lambda i=i: os.listdir(search / f"new query {i} a cat"))  # type: ignore[misc]
                for i in range(20)
            ),
            "ls search/<query>/ (again)": median_ms(lambda: os.listdir(search / "a cat")),
            "ls -l search/<query>/": median_ms(lambda: ls_l(search / "a photo"), runs=10),
            "probes in search/ (first)": once_ms(lambda: probe_all(search)),
            "probes in search/ (again)": median_ms(lambda: probe_all(search)),
            "probes in search/<query>/ (first)": once_ms(lambda: probe_all(search / "a cup")),
            "probes in search/<query>/ (again)": median_ms(lambda: probe_all(search / "a cup")),
            "ls photos/ through the mount": median_ms(lambda: os.listdir(mountpoint / "photos")),
            "ls photos/ in the backing directory": median_ms(lambda: os.listdir(store / "photos")),
        }
        figures["results in search/a photo/"] = len(os.listdir(search / "a photo"))
        return figures
    finally:
        semfs("unmount", mountpoint)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=300)
    parser.add_argument("--saved", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="semfs-view-") as scratch:
        store, mountpoint = Path(scratch) / "store", Path(scratch) / "mnt"
        build(store, args.photos)
        mountpoint.mkdir()
        figures = measure(store, mountpoint, args.saved)
    for name, value in figures.items():
        print(f"{name:40s} {value:8.2f}" + (" ms" if isinstance(value, float) else ""))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
