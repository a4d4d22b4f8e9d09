"""Ingest through the mount: what copying photos in costs, and how soon they are found.

    .venv/bin/python scripts/bench_ingest.py [--photos 1000] [--repeat 3]
        [--captioners classifier:efficientnet-lite0,classifier:efficientnet-lite1,...]
        [--output docs/benchmarks-ingest.md] [--smoke]

1. `cp -r` of N distinct photos into the mount against into a plain directory on the same
   disk, interleaved (native, mount, mount, native, ...), each mount copy a new set of
   photos into a fresh folder of a mounted store whose ingest runs meanwhile, as it
   would for a user, and drained before the next. The
   ratio of the medians is the figure to read; then the time from `cp` finishing to the
   last image being searchable (the ingest queue drained), and the daemon's peak memory.
2. Each captioner on the same photos (its own store and mount): images per second from
   the start of `cp` to the queue drained, and the daemon's memory.
3. One photo copied into an idle mount, until an open query directory lists it (polled
   every 10 ms), repeated.

Photos: Debian's tuxpaint-stamps-default photos put on white (as the evaluation does) and
scikit-image's samples, cropped, flipped and scaled into N distinct JPEGs of 1,200 to
1,600 px on the longer side. Needs root and /dev/fuse; everything lives in a temporary
directory, unmounted and removed at the end.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import importlib.resources
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parent.parent
TUXPAINT = Path("/usr/share/tuxpaint/stamps")
SKIMAGE = Path(str(importlib.resources.files("skimage") / "data"))
SKIMAGE_PHOTOS = ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg",
                  "motorcycle_left.png", "camera.png", "horse.png"]  # fmt: skip
LONG_SIDE = 1600  # pixels, at most: a photo as a phone shares it (the sources are smaller)
POLL = 0.01
DEFAULT_CAPTIONERS = [
    "classifier:efficientnet-lite0",
    "classifier:efficientnet-lite1",
    "classifier:efficientnet-lite2",
]


# --- photos -------------------------------------------------------------------------------


@functools.cache
def source_photos() -> list[Image.Image]:
    """The real photos to vary: tuxpaint's (outside cartoon/ and symbols/), on white."""
    paths = sorted(
        p
        for p in TUXPAINT.rglob("*.png")
        if not {"cartoon", "symbols"} & set(p.relative_to(TUXPAINT).parts)
    )
    photos = [_on_white(Image.open(p)) for p in paths]
    photos += [Image.open(SKIMAGE / name).convert("RGB") for name in SKIMAGE_PHOTOS]
    return photos


def _on_white(image: Image.Image) -> Image.Image:
    image = image.convert("RGBA")
    background = Image.new("RGBA", image.size, "white")
    return Image.alpha_composite(background, image).convert("RGB")


def make_photos(directory: Path, count: int, seed: int) -> int:
    """`count` distinct JPEGs, a different set for each seed (so a store never sees the
    same bytes twice and cannot reuse a caption by content hash); their total size."""
    directory.mkdir(parents=True)
    rng = random.Random(seed)
    sources = source_photos()
    for i in range(count):
        image = sources[i % len(sources)]
        inset = rng.uniform(0.005, 0.08)
        dx, dy = max(1, int(image.width * inset)), max(1, int(image.height * inset))
        image = image.crop((dx, dy, image.width - dx, image.height - dy))
        if rng.random() < 0.5:
            image = ImageOps.mirror(image)
        scale = LONG_SIDE / max(image.size) * rng.uniform(0.75, 1.0)  # up or down
        size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
        image.resize(size).save(directory / f"photo{i:04d}.jpg", quality=90)
    return sum(f.stat().st_size for f in directory.iterdir())


# --- the daemon ---------------------------------------------------------------------------


def semfs(*args: object) -> str:
    result = subprocess.run([sys.executable, "-m", "semfs", *map(str, args)],
                            capture_output=True, text=True, check=True)  # fmt: skip
    return result.stdout


@dataclass
class Mounted:
    store: Path
    mountpoint: Path
    pid: int
    peak_rss_mib: float = 0.0

    def rss_mib(self) -> tuple[float, float]:
        """(VmRSS, VmHWM) of the daemon in MiB."""
        values = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
        return values["VmRSS"], values["VmHWM"]

    def queued(self) -> int:
        uri = f"file:{self.store}/.semfs/catalog.sqlite3?mode=ro"
        with sqlite3.connect(uri, uri=True, timeout=30) as db:
            return int(db.execute("SELECT count(*) FROM ingest_queue").fetchone()[0])

    def failures(self) -> int:
        uri = f"file:{self.store}/.semfs/catalog.sqlite3?mode=ro"
        with sqlite3.connect(uri, uri=True, timeout=30) as db:
            return int(
                db.execute("SELECT count(*) FROM files WHERE state = 'failed'").fetchone()[0]
            )

    def done(self) -> int:
        """Images ingest has finished with: indexed or failed."""
        uri = f"file:{self.store}/.semfs/catalog.sqlite3?mode=ro"
        with sqlite3.connect(uri, uri=True, timeout=30) as db:
            query = "SELECT count(*) FROM files WHERE state IN ('indexed', 'failed')"
            return int(db.execute(query).fetchone()[0])

    def drain(self, images: int, timeout: float = 3600) -> float:
        """Seconds until `images` images in all are ingested and the queue is empty. The
        count matters: the tracker queues a file only after 0.1 s of quiet, so right
        after `cp` the queue is empty because nothing is on it yet."""
        return wait_until(lambda: self.done() >= images and self.queued() == 0, timeout, poll=0.05)


@contextmanager
def mounted(work: Path, name: str, *options: str) -> Iterator[Mounted]:
    store, mountpoint = work / f"{name}-store", work / f"{name}-mnt"
    store.mkdir()
    mountpoint.mkdir()
    semfs("mount", *options, store, mountpoint)
    pid = int((store / ".semfs" / "mount.lock").read_text().split()[0])
    try:
        mount = Mounted(store, mountpoint, pid)
        warm_up(mount)
        yield mount
    finally:
        semfs("unmount", mountpoint)


def warm_up(mount: Mounted) -> None:
    """Load the models before measuring: the embedder and index load in the background
    after mounting (a search waits for them); the captioner when the first image comes."""
    os.listdir(mount.mountpoint / "search" / "warm up")
    warm = mount.mountpoint / "warm-up"
    warm.mkdir()
    Image.open(SKIMAGE / "chelsea.png").convert("RGB").save(warm / "chelsea.jpg")
    mount.drain(1, timeout=600)


def wait_until(predicate: Callable[[], bool], timeout: float, poll: float = POLL) -> float:
    started = time.perf_counter()
    while not predicate():
        if time.perf_counter() - started > timeout:
            raise TimeoutError("the benchmark waited too long")
        time.sleep(poll)
    return time.perf_counter() - started


def timed(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def copy_tree(source: Path, target: Path) -> float:
    return timed(lambda: subprocess.run(["cp", "-r", str(source), str(target)], check=True))


# --- the measurements ---------------------------------------------------------------------


@dataclass
class CopyRun:
    native_s: float
    mount_s: float
    searchable_s: float  # from `cp` finishing to the queue drained
    ingested: int  # of the run's photos, indexed or failed when the clock stopped


@dataclass
class CaptionerRun:
    captioner: str
    copy_s: float
    drained_s: float  # from the start of `cp`
    photos: int
    failed: int
    idle_rss_mib: float
    peak_rss_mib: float

    @property
    def images_per_s(self) -> float:
        return self.photos / self.drained_s


@dataclass
class Results:
    photos: int
    photo_mib: float
    copies: list[CopyRun] = field(default_factory=list)
    copy_rss_mib: tuple[float, float] = (0.0, 0.0)  # idle, peak
    captioners: list[CaptionerRun] = field(default_factory=list)
    single: list[float] = field(default_factory=list)


def measure_copies(work: Path, photo_sets: list[Path], results: Results) -> None:
    plain = work / "plain"
    plain.mkdir()
    with mounted(work, "copy") as mount:
        idle = mount.rss_mib()[0]
        for run, photos in enumerate(photo_sets):

            def native(run: int = run, photos: Path = photos) -> float:
                return copy_tree(photos, plain / f"in{run}")

            def through_mount(run: int = run, photos: Path = photos) -> tuple[float, float]:
                seconds = copy_tree(photos, mount.mountpoint / f"in{run}")
                return seconds, mount.drain(1 + (run + 1) * results.photos)  # + warm-up

            before = mount.done()

            # Flip the order every run, so drift on a shared machine hits both sides.
            if run % 2 == 0:
                native_s = native()
                mount_s, searchable_s = through_mount()
            else:
                mount_s, searchable_s = through_mount()
                native_s = native()
            ingested = mount.done() - before
            results.copies.append(CopyRun(native_s, mount_s, searchable_s, ingested))
            print(f"  cp -r: native {native_s:.2f} s, mount {mount_s:.2f} s, "
                  f"searchable {searchable_s:.1f} s later", flush=True)  # fmt: skip
        results.copy_rss_mib = (idle, mount.rss_mib()[1])


def measure_captioner(work: Path, photos: Path, captioner: str, count: int) -> CaptionerRun:
    name = captioner.replace(":", "-")
    with mounted(work, name, "--captioner", captioner) as mount:
        idle = mount.rss_mib()[0]
        started = time.perf_counter()
        copy_s = copy_tree(photos, mount.mountpoint / "in")
        mount.drain(1 + count)
        drained = time.perf_counter() - started
        return CaptionerRun(
            captioner, copy_s, drained, count, mount.failures(), idle, mount.rss_mib()[1]
        )


def listed(query: Path, name: str) -> bool:
    """Whether the query folder lists the image of that name, at any rank (`03 x.jpg`)."""
    return name in (entry.partition(" ")[2] for entry in os.listdir(query))


def measure_single(work: Path, repeat: int) -> list[float]:
    """One photo into an idle mount, until an open query directory lists it."""
    coffee = Image.open(SKIMAGE / "coffee.png").convert("RGB")
    times: list[float] = []
    with mounted(work, "single") as mount:
        query = mount.mountpoint / "search" / "a cup of coffee"
        os.listdir(query)  # the query is open, as in a file manager's window
        for i in range(repeat):
            photo = work / f"coffee{i}.jpg"
            coffee.crop((i, i, coffee.width - i, coffee.height - i)).save(photo, quality=88)
            shutil.copy(photo, mount.mountpoint / photo.name)
            times.append(wait_until(lambda n=photo.name: listed(query, n), timeout=60))
            mount.drain(2 + i)
    return times


# --- report -------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def report(results: Results, options: argparse.Namespace, runtime: float, chart: str) -> str:
    native = statistics.median(c.native_s for c in results.copies)
    mount = statistics.median(c.mount_s for c in results.copies)
    ratios = [c.mount_s / c.native_s for c in results.copies]
    searchable = statistics.median(c.searchable_s for c in results.copies)
    n = results.photos
    lines = [
        "# Benchmarks: ingest",
        "",
        "What copying photos into a mounted store costs, and how soon they can be found. "
        "Produced in one run by:",
        "",
        "```",
        f".venv/bin/python scripts/bench_ingest.py --photos {n} --repeat {options.repeat}",
        "```",
        "",
        *environment(runtime),
        "",
        "## Copying in",
        "",
        f"`cp -r` of {n} distinct photos ({results.photo_mib:.0f} MiB of JPEG, "
        f"{LONG_SIDE * 3 // 4}-{LONG_SIDE} px) into a folder of the mount, against into a "
        f"plain directory on the same disk, {len(results.copies)} times each, interleaved. "
        "The mounted store captions, embeds and indexes the photos while `cp` runs, as it "
        "would for a user (the default models, loaded before the first copy).",
        "",
        "| | Native (median) | Mount (median) | Mount / native | Per-run ratios |",
        "|---|--:|--:|--:|--:|",
        f"| `cp -r` {n} photos | {ms(native)} | {ms(mount)} | **{mount / native:.2f}x** | "
        f"{min(ratios):.2f}x-{max(ratios):.2f}x |",
        "",
        f"- From `cp` finishing to the last photo searchable (the ingest queue empty): "
        f"**{ms(searchable)}** (median), i.e. {n / (mount + searchable):.1f} photos/s from "
        "the start of `cp`. The clock stops once every photo of the run is ingested "
        f"(indexed or failed) and the queue is empty: "
        f"{min(c.ingested for c in results.copies)} of {n} photos in every run.",
        f"- Daemon memory: {results.copy_rss_mib[0]:.0f} MiB resident when idle, peak "
        f"{results.copy_rss_mib[1]:.0f} MiB (VmHWM) by the end.",
        "",
        "## Each captioner",
        "",
        f"The same {results.captioners[0].photos if results.captioners else 0} photos "
        "copied into a fresh mount running each captioner (default embedder); the rate "
        "counts from the start of `cp` to the queue drained.",
        "",
        "| Captioner | `cp -r` | Until searchable | Images/s | Failed | RSS idle | RSS peak |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    lines += [
        f"| `{c.captioner}` | {ms(c.copy_s)} | {ms(c.drained_s)} | **{c.images_per_s:.1f}** "
        f"| {c.failed} | {c.idle_rss_mib:.0f} MiB | {c.peak_rss_mib:.0f} MiB |"
        for c in results.captioners
    ]
    single = results.single
    lines += [
        "",
        f"![images per second by captioner]({chart})",
        "",
        "## One photo into an idle mount",
        "",
        f"A photo copied into an idle mount while `search/a cup of coffee/` is open, "
        f"until that listing shows it (tracker, queue, decode, caption, embed, index, "
        f"the view's refresh), polled every {POLL * 1000:.0f} ms, {len(single)} times: "
        f"p50 **{ms(statistics.median(single))}**, p95 {ms(percentile(single, 0.95))}, "
        f"max {ms(max(single))}.",
        "",
    ]
    return "\n".join(lines)


def environment(runtime: float) -> list[str]:
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return [
        f"- Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; commit {commit}",
        f"- {os.cpu_count()} CPUs, Linux {platform.release()}, Python {platform.python_version()}",
        f"- Load average at the end: {load} (a shared machine: read ratios, not seconds)",
        f"- Total runtime: {runtime:.0f} s",
    ]


def plot(results: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 3.2))
    names = [c.captioner.removeprefix("classifier:") for c in results.captioners]
    axes.barh(names, [c.images_per_s for c in results.captioners], color="#4878a8")
    axes.set_xlabel("images per second, cp start to searchable (2 cores)")
    axes.invert_yaxis()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# --- main ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--captioner-photos", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--single", type=int, default=10)
    parser.add_argument("--captioners", default=",".join(DEFAULT_CAPTIONERS))
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks-ingest.md")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI")
    options = parser.parse_args(argv)
    if options.smoke:
        options.photos, options.captioner_photos, options.repeat, options.single = 12, 6, 1, 2
        options.captioners = DEFAULT_CAPTIONERS[0]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="semfs-bench-ingest-") as temporary:
        work = Path(temporary)
        photo_sets = [work / f"photos{run}" for run in range(options.repeat)]
        sizes = [make_photos(path, options.photos, seed=run) for run, path in enumerate(photo_sets)]
        results = Results(options.photos, statistics.mean(sizes) / (1 << 20))
        print(f"copying {options.photos} photos in, {options.repeat} times", flush=True)
        measure_copies(work, photo_sets, results)
        subset = work / "subset"
        make_photos(subset, options.captioner_photos, seed=options.repeat)
        for captioner in options.captioners.split(","):
            print(f"captioner {captioner}", flush=True)
            run = measure_captioner(work, subset, captioner, options.captioner_photos)
            results.captioners.append(run)
            print(f"  {run.images_per_s:.1f} images/s", flush=True)
        print("one photo into an idle mount", flush=True)
        results.single = measure_single(work, options.single)
    chart = options.output.with_suffix(".png")
    plot(results, chart)
    text = report(results, options, time.perf_counter() - started, chart.name)
    options.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
