"""What text in images (OCR, the idle pass) costs: how fast the idle pass reads photos
after ingest, and how many of the signs it finds.

    .venv/bin/python scripts/bench_text.py [--photos 200] [--output docs/facets-text-cost.md]

N distinct photos (scripts/bench_ingest.py's: real photos cropped, flipped and scaled to
1,200-1,600 px); every other one gets a sign rendered on it (a phrase in DejaVu Sans Bold,
dark on a light panel, from fonts-dejavu-core). Copied into a fresh mount with
`facet_text = caption` (the default); ingest's own rate (cp start to the queue drained)
is the first figure; then the idle pass's: images read per second from the queue drained
until the text queue is empty, and the daemon's CPU an image over that span. Last, how
many signs' words were found: a phrase counts when all its words are in the image's
stored text. Needs root and /dev/fuse.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_facets
import bench_ingest as bench

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
PHRASES = ("INVOICE 2024", "LIBRARY HOURS", "LOST CAT REWARD", "PARKING PERMIT",
           "GARDEN PARTY", "CLOSED SUNDAY", "FRESH BREAD", "EMERGENCY EXIT")  # fmt: skip


def add_signs(directory: Path) -> dict[str, str]:
    """A sign on every other photo; file name -> its phrase."""
    font = ImageFont.truetype(str(FONT), 64)
    signs = {}
    for i, path in enumerate(sorted(directory.glob("*.jpg"))):
        if i % 2:
            continue
        phrase = PHRASES[(i // 2) % len(PHRASES)]
        with Image.open(path) as opened:
            image = opened.convert("RGB")
        draw = ImageDraw.Draw(image)
        left, top, right, bottom = draw.textbbox((0, 0), phrase, font=font)
        x, y = 40 + (i * 37) % 200, image.height // 4 + (i * 53) % (image.height // 2)
        draw.rectangle((x - 20, y - 20, x + right - left + 20, y + bottom - top + 30), fill="white")
        draw.text((x - left, y - top), phrase, font=font, fill="black")
        image.save(path, "JPEG", quality=90)
        signs[path.name] = phrase
    return signs


def texts(store: Path) -> tuple[int, dict[str, str]]:
    """(images waiting to be read, file name -> text read)."""
    uri = f"file:{store}/.semfs/catalog.sqlite3?mode=ro"
    with sqlite3.connect(uri, uri=True, timeout=30) as db:
        waiting = int(db.execute("SELECT count(*) FROM text_queue").fetchone()[0])
        rows = db.execute(
            "SELECT f.name, d.text FROM descriptions d JOIN files f ON f.id = d.file_id "
            "WHERE d.text IS NOT NULL"
        ).fetchall()
    return waiting, {os.fsdecode(name): text for name, text in rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--output", type=Path)
    options = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="semfs-bench-text-") as temporary:
        work = Path(temporary)
        photos = work / "photos"
        bench.make_photos(photos, options.photos, seed=7)
        signs = add_signs(photos)
        with bench.mounted(work, "text", "-o", "facet_text=caption") as mount:
            copy_start = time.perf_counter()
            bench.copy_tree(photos, mount.mountpoint / "in")
            mount.drain(1 + options.photos)
            drained, cpu_drained = time.perf_counter(), bench_facets.cpu_seconds(mount.pid)
            ingest_rate = options.photos / (drained - copy_start)
            bench.wait_until(lambda: texts(mount.store)[0] == 0, 3600, poll=0.5)
            read_s = time.perf_counter() - drained
            read_cpu = bench_facets.cpu_seconds(mount.pid) - cpu_drained
            _, found = texts(mount.store)
    read = [found.get(name, "") for name in signs]
    whole = sum(1 for name, phrase in signs.items()
                if set(phrase.lower().split()) <= set(found.get(name, "").split()))  # fmt: skip
    words = sum(len(set(p.lower().split()) & set(t.split()))
                for p, t in zip(signs.values(), read, strict=True))  # fmt: skip
    total_words = sum(len(p.split()) for p in signs.values())
    without = [text for name, text in found.items() if name not in signs and name.endswith(".jpg")]
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Measured {when} by scripts/bench_text.py on {platform.machine()}, "
        f"{len(os.sched_getaffinity(0))} cores (shared with other jobs), load average "
        f"{os.getloadavg()[0]:.1f}; {options.photos} photos of 1,200-1,600 px, half with a "
        f"rendered sign; {time.perf_counter() - started:.0f} s in all.",
        "",
        "| what | figure |",
        "| --- | ---: |",
        f"| ingest (cp start to the queue drained), images/s | {ingest_rate:.1f} |",
        f"| idle text pass, images/s (all photos, from the queue drained) | "
        f"{options.photos / read_s:.1f} |",
        f"| idle text pass, daemon CPU ms an image | {read_cpu * 1000 / options.photos:.0f} |",
        f"| signs read whole (every word found) | {whole} of {len(signs)} |",
        f"| sign words found | {words} of {total_words} |",
        f"| photos without a sign given words | {sum(1 for t in without if t)} of {len(without)} |",
    ]
    text = "\n".join(lines)
    print(text)
    if options.output:
        options.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
