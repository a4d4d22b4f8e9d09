"""The daemon's memory with `--profile low-memory` against the default, at 100 k and 1 M
indexed images.

    .venv/bin/python scripts/bench_low_memory.py [--sizes 100000,1000000]
        [--default-sizes 100000] [--work DIR] [--json FILE]

For each size and profile: a store of N images with caption-like vectors made by the
profile's embedder and a base Annoy index (benchlib/store.py, as scripts/bench_search.py
builds them), mounted with that profile. Measured from /proc/PID/status: anonymous
memory (RssAnon: heap, models, caches; what the profile bounds) and file-backed memory
(RssFile: libraries and the memory-mapped index, which the kernel drops under pressure),
when listable, idle after the reconcile, after 20 new queries, and the peak while 24 real
photos are copied in and ingested: sampled every 0.1 s, and bounded from above by the
kernel's peak (VmHWM, reset first) less the file-backed pages when ingest began. Needs
root and /dev/fuse.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from benchlib import vectors
from benchlib.mount import memory_mib
from benchlib.store import build_store

from semfs.commands.doctor import model_checks, report_text
from semfs.config import PROFILES, Settings
from semfs.ml.embedder import make_embedder

PHOTOS = ("chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png", "motorcycle_left.png",
          "camera.png")  # fmt: skip


def semfs(*args: object) -> str:
    return subprocess.run([sys.executable, "-m", "semfs", *map(str, args)], check=True,
                          capture_output=True, text=True).stdout  # fmt: skip


def store_for(work: Path, size: int, embedder: str, pools: dict[str, Any]) -> Path:
    root = work / f"{size}-{embedder.split(':')[-1]}"
    root.mkdir(parents=True, exist_ok=True)
    if embedder not in pools:
        model = make_embedder(embedder)
        captions = vectors.caption_pool(np.random.default_rng(0))
        pool = np.concatenate([model.embed(captions[i : i + 64])
                               for i in range(0, len(captions), 64)])  # fmt: skip
        pools[embedder] = (model.name, pool, captions)
    name, pool, captions = pools[embedder]
    built = build_store(root, vectors.realistic(pool, captions, size, seed=size), name,
                        Settings.index_trees)  # fmt: skip
    return built.store


def measure(store: Path, profile: str) -> dict[str, float]:
    mountpoint = store.parent / "mnt"
    mountpoint.mkdir(exist_ok=True)
    log = Settings.load(store).log_path
    start = log.stat().st_size if log.exists() else 0
    semfs("mount", "--profile", profile, store, mountpoint)
    figures: dict[str, float] = {}
    try:
        pid = int(Settings.load(store).lock_path.read_text().split()[0])
        os.listdir(mountpoint)
        figures.update({f"listable {k}": v for k, v in memory_mib(pid).items()})
        deadline = time.monotonic() + 1800
        while b"reconcile finished" not in log.read_bytes()[start:]:
            assert time.monotonic() < deadline, "no reconcile"
            time.sleep(0.2)
        time.sleep(2.0)
        figures.update({f"idle {k}": v for k, v in memory_mib(pid).items()})
        for query in vectors.query_texts(20, seed=7):
            os.listdir(mountpoint / "search" / query)
        figures.update({f"queries {k}": v for k, v in memory_mib(pid).items()})
        data = Path(str(importlib.resources.files("skimage") / "data"))
        incoming = mountpoint / "incoming"
        incoming.mkdir()
        peak_anon = 0.0
        # Sampling can miss a short peak; the kernel's own peak (VmHWM, reset here) can't.
        # It counts file pages too, so it less the file pages at the start bounds the
        # anonymous peak from above (file pages mapped meanwhile only loosen the bound).
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        file_at_start = memory_mib(pid)["RssFile"]
        for i in range(24):
            shutil.copy(data / PHOTOS[i % len(PHOTOS)], incoming / f"{i:02d}-{PHOTOS[i % 6]}")
        deadline = time.monotonic() + 600
        while json.loads(semfs("status", "--json", store))["queued"]:
            peak_anon = max(peak_anon, memory_mib(pid)["RssAnon"])
            assert time.monotonic() < deadline, "ingest did not finish"
            time.sleep(0.1)
        figures["ingest peak RssAnon"] = max(peak_anon, memory_mib(pid)["RssAnon"])
        figures["ingest VmHWM"] = memory_mib(pid)["VmHWM"]
        figures["ingest peak RssAnon bound"] = figures["ingest VmHWM"] - file_at_start
        shutil.rmtree(incoming)
    finally:
        subprocess.run([sys.executable, "-m", "semfs", "unmount", str(mountpoint)], check=False)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--default-sizes", default="100000")
    parser.add_argument("--work", type=Path, help="keep the stores here and reuse them")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="semfs-lowmem-"))
    pools: dict[str, Any] = {}
    # What install.sh (or semfs doctor) makes once per user, made here too: the first
    # daemon would otherwise load torch to compute the features' projection, once.
    models = [f for p in PROFILES.values() for f in model_checks(Settings(store=work, **p))]
    if not all(finding.ok for finding in models):
        sys.exit(report_text(models))
    runs = []
    plan = [(int(s), "low-memory") for s in args.sizes.split(",") if s]
    plan += [(int(s), "default") for s in args.default_sizes.split(",") if s]
    for size, profile in plan:
        embedder = PROFILES[profile].get("embedder", Settings.embedder)
        store = store_for(work, size, embedder, pools)
        figures = measure(store, profile)
        runs.append({"size": size, "profile": profile, "embedder": embedder, **figures})
        print(json.dumps(runs[-1]), flush=True)
        if args.json:
            args.json.write_text(json.dumps(runs, indent=2) + "\n")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
