"""Mount and reconcile time for a store of many files, first time and unchanged.

    .venv/bin/python scripts/bench_reconcile.py [--files 100000] [--json FILE]

Builds a store of N distinct tiny PNGs (16x16, in folders of 1,000) and a tenth as many
non-images, then measures: `semfs mount` until the mount lists, until the first
reconcile has catalogued everything (from the daemon's log), the daemon's peak memory
meanwhile, the unmount; then the same for a remount with nothing changed. Ingest runs
in the background as it would for a user (it is not waited for: at the measured ~30
images/s, 100 k would take about an hour). Needs root and /dev/fuse.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

RECONCILED = re.compile(r"reconcile finished in ([0-9.]+) s: (.*)")


def build(store: Path, files: int) -> None:
    for i in range(files):
        folder = store / f"folder{i // 1000:03d}"
        if i % 1000 == 0:
            folder.mkdir(parents=True)
        buffer = io.BytesIO()
        colour = (i % 256, (i // 256) % 256, (i // 65536) % 256)
        Image.new("RGB", (16, 16), colour).save(buffer, "PNG")
        (folder / f"img{i:06d}.png").write_bytes(buffer.getvalue())
        if i % 10 == 0:
            (folder / f"notes{i:06d}.txt").write_text(f"note {i}\n")


def peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(store: Path, mountpoint: Path) -> dict[str, object]:
    log = store / ".semfs" / "mount.log"
    offset = log.stat().st_size if log.exists() else 0
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "semfs", "mount", str(store), str(mountpoint)],
                   check=True, capture_output=True)  # fmt: skip
    pid = int((store / ".semfs" / "mount.lock").read_text().split()[0])
    mounted_s = time.monotonic() - started
    while not any(mountpoint.iterdir()):
        time.sleep(0.01)
    listable_s = time.monotonic() - started
    while not (found := RECONCILED.search(log.read_text()[offset:])):
        time.sleep(0.1)
    reconciled_s = time.monotonic() - started
    peak = peak_mib(pid)
    unmount_started = time.monotonic()
    subprocess.run([sys.executable, "-m", "semfs", "unmount", str(mountpoint)], check=True)
    return {
        "mount_s": round(mounted_s, 2), "listable_s": round(listable_s, 2),
        "reconciled_s": round(reconciled_s, 2), "daemon_reconcile_s": float(found.group(1)),
        "summary": found.group(2), "peak_rss_mib": round(peak, 1),
        "unmount_s": round(time.monotonic() - unmount_started, 2),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="semfs-reconcile-") as temporary:
        store, mountpoint = Path(temporary, "store"), Path(temporary, "mnt")
        mountpoint.mkdir()
        started = time.monotonic()
        build(store, args.files)
        print(f"built {args.files} images in {time.monotonic() - started:.0f} s", flush=True)
        results = {"files": args.files, "first": measure(store, mountpoint)}
        print(json.dumps(results["first"]), flush=True)
        results["unchanged"] = measure(store, mountpoint)
        print(json.dumps(results["unchanged"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
