"""Bulk ingest on Ray against the single-process path: images per second, measured in
one run on the same photos.

    .venv/bin/python scripts/bench_scaleout.py [--photos 400] [--workers 1,2,3]
        [--json FILE]

Builds a store of distinct photos (crops of scikit-image's samples, 640x480 JPEGs),
then for each engine copies it fresh and times `semfs index` from start to the summary
(model loading and, for Ray, starting the local cluster included), and separately the
ingest alone (the progress bar's own rate: from the first image stored to the last).
`--workers` sets the Ray actors (each a process holding the models).
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

SAMPLES = ("chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png", "motorcycle_left.png",
           "camera.png", "horse.png", "hubble_deep_field.jpg")  # fmt: skip
RATE = re.compile(r"([0-9.]+)image/s\]")


def build(store: Path, count: int) -> None:
    data = Path(str(importlib.resources.files("skimage") / "data"))
    sources = [Image.open(data / name).convert("RGB").resize((800, 600)) for name in SAMPLES]
    store.mkdir(parents=True)
    for i in range(count):
        x, y = (i * 7) % 160, (i * 11) % 120
        crop = sources[i % len(sources)].crop((x, y, x + 640, y + 480))
        crop.save(store / f"photo{i:05d}.jpg", quality=88)


def run(store: Path, *extra: str) -> tuple[float, float, str]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "semfs", "index", str(store), *extra],
                            capture_output=True, text=True, check=True)  # fmt: skip
    elapsed = time.perf_counter() - started
    rates = RATE.findall(result.stderr)
    return elapsed, float(rates[-1]) if rates else 0.0, result.stdout.splitlines()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=400)
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="semfs-scaleout-") as scratch:
        source = Path(scratch) / "source"
        build(source, args.photos)
        plans = [("local", ())] + [
            (f"ray, {n} workers", ("--engine", "ray", "--ray-workers", n))
            for n in args.workers.split(",")
        ]
        for label, extra in plans:
            store = Path(scratch) / "store"
            shutil.rmtree(store, ignore_errors=True)
            shutil.copytree(source, store)
            elapsed, rate, summary = run(store, *extra)
            results.append({"engine": label, "photos": args.photos, "seconds": elapsed,
                            "images_per_s_overall": args.photos / elapsed,
                            "images_per_s_ingest": rate, "summary": summary})  # fmt: skip
            print(json.dumps(results[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
