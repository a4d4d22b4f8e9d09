"""What search by example costs, through the real mount, beside search by text.

    .venv/bin/python scripts/bench_similar.py [--photos 300] [--json FILE]

Builds a store of distinct photos (crops of scikit-image's samples, as bench_view.py),
mounts it and times, in one run: how long until every photo is searchable by text, and
until each also has its image features (which the captioning pass computes), so the
rate of each; `cp photo.jpg similar/` (decode and features, before close returns);
`ls similar/<example>/` first and again, `mkdir similar/<stored image>` + its first
listing, beside `ls search/<new query>/`; and the size of an Annoy index per vector at
the features' 256 dimensions (1,280 kept whole) against the captions' 384 (synthetic
vectors, 25 trees), to say what the image index costs at scale. Needs root and /dev/fuse.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_view import build, median_ms, once_ms

ANNOY_ITEMS = 20_000


def semfs(*args: str | Path) -> str:
    done = subprocess.run([sys.executable, "-m", "semfs", *map(str, args)], check=True,
                          capture_output=True, text=True)  # fmt: skip
    return done.stdout


def status(store: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(semfs("status", "--json", store))
    return result


def wait_until(store: Path, done: Any, timeout: float = 900) -> float:
    started = time.monotonic()
    while not done(status(store)):
        if time.monotonic() - started > timeout:
            raise TimeoutError("ingest did not finish")
        time.sleep(0.2)
    return time.monotonic()


def through_mount(store: Path, mountpoint: Path, photos: int) -> dict[str, float]:
    started = time.monotonic()
    semfs("mount", store, mountpoint)
    figures: dict[str, float] = {}
    try:
        captioned = wait_until(store, lambda s: s["indexed"] == photos and s["queued"] == 0)
        featured = wait_until(store, lambda s: s["image_features"] == photos
                              and s["image_features_queued"] == 0)  # fmt: skip
        figures["captioned and searchable by text, images/s"] = photos / (captioned - started)
        figures["searchable by example too, images/s"] = photos / (featured - started)
        similar, search = mountpoint / "similar", mountpoint / "search"
        example = Path(tempfile.mkdtemp()) / "example.jpg"
        shutil.copy(store / "photos" / "photo0001.jpg", example)
        copies = []
        for i in range(10):
            copies.append(once_ms(lambda i=i: shutil.copyfile(example, similar / f"ex{i}.jpg")))  # type: ignore[misc]
        figures["cp photo.jpg similar/ (ms)"] = statistics.median(copies)
        figures["ls similar/<example>/ first time (ms)"] = statistics.median(
            once_ms(lambda i=i: os.listdir(similar / f"ex{i}.jpg"))
            for i in range(10)  # type: ignore[misc]
        )
        figures["ls similar/<example>/ again (ms)"] = median_ms(
            lambda: os.listdir(similar / "ex0.jpg")
        )
        figures["mkdir similar/<stored image> + first ls (ms)"] = statistics.median(
            once_ms(lambda i=i: (os.mkdir(similar / f"photo{i:04d}.jpg"),  # type: ignore[misc]
                                 os.listdir(similar / f"photo{i:04d}.jpg")))
            for i in range(2, 12)
        )  # fmt: skip
        os.listdir(search / "warm up")
        figures["ls search/<new query>/ first time (ms)"] = statistics.median(
            once_ms(lambda i=i: os.listdir(search / f"new query {i} a cat"))
            for i in range(10)  # type: ignore[misc]
        )
        figures["results listed in similar/ex0.jpg/"] = len(os.listdir(similar / "ex0.jpg"))
        return figures
    finally:
        semfs("unmount", mountpoint)


def annoy_bytes_per_vector(dimensions: int, directory: Path) -> float:
    from annoy import AnnoyIndex

    rng = np.random.default_rng(0)
    index = AnnoyIndex(dimensions, "angular")
    path = directory / f"bench-{dimensions}.ann"
    index.on_disk_build(str(path))
    for i in range(ANNOY_ITEMS):
        index.add_item(i, np.abs(rng.normal(size=dimensions)).tolist())
    index.build(25, n_jobs=1)
    index.unload()
    return path.stat().st_size / ANNOY_ITEMS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=300)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="semfs-similar-") as scratch:
        store, mountpoint = Path(scratch) / "store", Path(scratch) / "mnt"
        build(store, args.photos)
        mountpoint.mkdir()
        figures = through_mount(store, mountpoint, args.photos)
        for dimensions in (384, 256, 1280):
            per_vector = annoy_bytes_per_vector(dimensions, Path(scratch))
            figures[f"Annoy bytes per vector, {dimensions}-d, 25 trees"] = per_vector
            figures[f"Annoy file at 1 M images, {dimensions}-d (GiB)"] = per_vector * 1e6 / 2**30
    for name, value in figures.items():
        print(f"{name:50s} {value:10.2f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
