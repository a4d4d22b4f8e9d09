"""Measure semfs's passthrough overhead as ratios taken in one run.

    .venv/bin/python scripts/bench_passthrough.py [--repeat 5]
        [--output docs/benchmarks-passthrough.md] [--json FILE] [--baseline FILE]
    .venv/bin/python scripts/bench_passthrough.py --smoke --output /tmp/x.md   # CI: seconds
    .venv/bin/python scripts/bench_passthrough.py --only ls \
        --variant acl=posix_acl=true --variant wb=writeback_cache=true   # levers, one run

Each workload runs on a temporary store directly ("native") and through a semfs mount of
that same store ("mount"), interleaved: native, mount, mount, native, ... (the order flips
every repetition so slow drift on a shared machine hits both sides alike). The table
gives the median of each side and the ratio mount/native, with the range of the
per-repetition ratios, because on a noisy machine the ratio is what holds still.

The workloads are the ones users run: `ls -l` of 10,000 files, `cat` of 1,000 small
files, fio's sequential and 4 KiB random reads and writes, `cp` of a 100 MiB file and
`cp -r` of 1,000 photos. fio (a Debian package) times itself; the others are timed
around the command. Without fio its rows are skipped with a warning.

Between runs the script waits until the semfs daemon is idle (after writes of images it
hashes them and records them in the catalog in the background), so one run's leftovers
do not land in the next one's time; how long it stayed busy is noted. "Cold" rows drop
the page, dentry and inode caches first (`echo 3 > /proc/sys/vm/drop_caches`, which
needs root); without that permission they run warm and say so.

With --output, the results go between the `<!-- results -->` and `<!-- /results -->`
markers of that page (prose around them is kept), or make a new page; a bar chart of the
ratios is written beside it (PNG, matplotlib), with a --baseline run's ratios (from
--json of an earlier run) drawn beside the new ones.

--variant NAME=OPTIONS (repeatable) mounts one more store, with `-o OPTIONS`, beside
the default mount, with the same fixtures, and runs it in the same interleaved order:
the table gains a "NAME / native" column, so a mount option is measured on and off in
one run.

Needs root (or FUSE mount rights) and /dev/fuse. The photos are made from the Debian
tuxpaint-stamps photos (or scikit-image's samples), mirrored, cropped and re-encoded so
that all are distinct. The temporary store and mount live under --dir (default: the
system temp dir) and are always unmounted and removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.resources
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyfuse3
import trio

import semfs
from semfs.config import Settings

REPO = Path(__file__).resolve().parent.parent
MIB = 1 << 20
KIB = 1 << 10
IDLE_WINDOW = 0.2  # seconds the daemon must stay (nearly) off the CPU to count as idle
IDLE_TIMEOUT = 180.0
TUXPAINT_STAMPS = Path("/usr/share/tuxpaint/stamps")
NOT_PHOTOS = ("cartoon", "symbols")  # tuxpaint stamp folders of drawings, not photos
RESULTS_BEGIN, RESULTS_END = "<!-- results -->", "<!-- /results -->"

# pyfuse3's own passthrough example, as quoted in the design notes (mount/native).
REFERENCE = (
    "pyfuse3's example passthrough filesystem measured `ls -l` of 10,000 files at 66x "
    "native even with 300 s cache timeouts (9.3 s against 31 ms native with 0 s), "
    "sequential read 0.85x, sequential write 6.4x, 4 KiB random write 10.7x and `cat` of "
    "1,000 small files 13-50x."
)

# The targets: (row keys, ceiling on mount/native, what they are).
TARGETS = (
    (("ls-cold", "ls-warm", "cat-cold", "cat-warm"), 3.0, "metadata"),
    (("fio-seq-write", "fio-seq-read"), 1.5, "sequential I/O"),
    (("cp-big", "cp-photos"), 1.3, "`cp`"),
)


# --- options ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    repeat: int
    listing_files: int
    small_files: int
    small_kib: int
    seq_mib: int
    rand_mib: int  # data moved by each random-I/O job (on a seq_mib file)
    big_mib: int
    photos: int
    only: frozenset[str]
    base_dir: Path | None
    output: Path | None
    json_path: Path | None
    baseline: Path | None
    smoke: bool
    variants: tuple[tuple[str, str], ...] = ()  # (name, -o options) of extra mounts


WORKLOAD_KEYS = ("ls", "cat", "fio", "cp-big", "cp-photos")
# Run only when asked for with --only: the probe the kernel sends before each write(2).
EXTRA_KEYS = ("probe",)
PROBES = 10_000  # getxattr calls timed by the probe row


def parse_options(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(
        description="Time workloads natively and through a semfs mount of the same store.",
    )
    parser.add_argument("--repeat", type=int, default=5, help="repetitions per side (3-5)")
    parser.add_argument("--listing-files", type=int, default=10_000, help="files for ls -l")
    parser.add_argument("--small-files", type=int, default=1000, help="files for cat")
    parser.add_argument("--small-kib", type=int, default=16, help="size of each small file")
    parser.add_argument("--seq-mib", type=int, default=256, help="fio file size, MiB")
    parser.add_argument("--rand-mib", type=int, default=32, help="fio random I/O, MiB")
    parser.add_argument("--big-mib", type=int, default=100, help="file for cp, MiB")
    parser.add_argument("--photos", type=int, default=1000, help="photos for cp -r")
    parser.add_argument(
        "--only", action="append", choices=WORKLOAD_KEYS + EXTRA_KEYS, default=[], help="repeatable"
    )
    parser.add_argument("--dir", type=Path, help="where to make the temporary store and mount")
    parser.add_argument("--output", type=Path, help="write the results into this page")
    parser.add_argument("--json", type=Path, dest="json_path", help="also save raw results")
    parser.add_argument("--baseline", type=Path, help="--json of an earlier run, to compare")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes, one repetition (CI: it runs at all)"
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=OPTIONS",
        help="also mount a store with -o OPTIONS and time it as NAME (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    variants = []
    for text in args.variant:
        name, _, mount_options = text.partition("=")
        if not name.isidentifier() or name in ("native", "mount") or not mount_options:
            parser.error(f"--variant {text!r}: expected NAME=OPTIONS, e.g. acl=posix_acl=true")
        variants.append((name, mount_options))
    if args.smoke:
        args.repeat, args.listing_files, args.small_files = 1, 200, 50
        args.seq_mib, args.rand_mib, args.big_mib, args.photos = 8, 1, 4, 20
    return Options(
        repeat=args.repeat,
        listing_files=args.listing_files,
        small_files=args.small_files,
        small_kib=args.small_kib,
        seq_mib=args.seq_mib,
        rand_mib=min(args.rand_mib, args.seq_mib),
        big_mib=args.big_mib,
        photos=args.photos,
        only=frozenset(args.only or WORKLOAD_KEYS),
        base_dir=args.dir,
        output=args.output,
        json_path=args.json_path,
        baseline=args.baseline,
        smoke=args.smoke,
        variants=tuple(variants),
    )


# --- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    name: str  # "native", "mount" or a variant's name (another mount)
    root: Path

    @property
    def is_mount(self) -> bool:
        return self.name != "native"


@dataclass(frozen=True)
class Row:
    """One line of the table: a timed phase of a workload."""

    key: str
    label: str
    cache: str
    megabytes: float = 0.0  # data moved, for a throughput note; 0 for none
    note: str = ""


@dataclass
class Samples:
    native: list[float] = field(default_factory=list)
    mount: list[float] = field(default_factory=list)
    busy_after: list[float] = field(default_factory=list)  # daemon busy after mount runs
    variants: dict[str, list[float]] = field(default_factory=dict)  # --variant mounts

    def add(self, side: str, seconds: float) -> None:
        if side in ("native", "mount"):
            getattr(self, side).append(seconds)
        else:
            self.variants.setdefault(side, []).append(seconds)

    def ratio(self, side: str = "mount") -> float:
        times = self.mount if side == "mount" else self.variants[side]
        return statistics.median(times) / statistics.median(self.native)

    def ratio_range(self) -> tuple[float, float]:
        ratios = [m / n for n, m in zip(self.native, self.mount, strict=False) if n > 0]
        return min(ratios), max(ratios)


Timings = dict[str, float]  # row key -> seconds


@dataclass(frozen=True)
class Workload:
    key: str
    rows: tuple[Row, ...]
    run: Callable[[Side, int], Timings]


@dataclass(frozen=True)
class RunInfo:
    command: str
    date: str
    version: str
    machine: list[str]
    settings: str
    peak_rss_kib: int | None
    daemon_log_problems: int
    total_seconds: float


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def run_quietly(command: list[str]) -> None:
    subprocess.run(
        command,
        stdout=subprocess.DEVNULL,
        check=True,
        env={**os.environ, "LC_ALL": "C"},
    )


# --- the daemon -----------------------------------------------------------------------------


def semfs_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "semfs", *args]


def daemon_pid(settings: Settings) -> int:
    first_line = settings.lock_path.read_text().partition("\n")[0]
    return int(first_line)


def cpu_ticks(pid: int) -> int:
    """User + system CPU time of a process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def peak_rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as file:
            for line in file:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


@contextlib.contextmanager
def mounted(store: Path, mountpoint: Path, mount_options: str = "") -> Iterator[int]:
    """Mount `store` at `mountpoint` with the semfs CLI; yield the daemon's pid."""
    extra = ["-o", mount_options] if mount_options else []
    result = subprocess.run(
        semfs_command("mount", *extra, str(store), str(mountpoint)), capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"semfs mount failed:\n{result.stdout}{result.stderr}")
    try:
        yield daemon_pid(Settings.load(store))
    finally:
        unmount(mountpoint)


def unmount(mountpoint: Path) -> None:
    attempts = (
        semfs_command("unmount", str(mountpoint)),
        semfs_command("unmount", "--lazy", str(mountpoint)),
        ["fusermount3", "-u", "-z", str(mountpoint)],
    )
    for command in attempts:
        if not os.path.ismount(mountpoint):
            return
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as error:
            print(f"warning: {shlex.join(command)}: {error}", file=sys.stderr)
            continue
        if result.returncode != 0:
            print(f"warning: {shlex.join(command)}: {result.stderr.strip()}", file=sys.stderr)
    if os.path.ismount(mountpoint):
        print(f"warning: {mountpoint} is still mounted", file=sys.stderr)


# --- fixtures ---------------------------------------------------------------------------------


def photo_sources() -> list[Path]:
    """Real photos that ship in Debian (tuxpaint stamps) or, lacking them, scikit-image."""
    if TUXPAINT_STAMPS.is_dir():
        found = [
            path
            for path in TUXPAINT_STAMPS.rglob("*")
            if path.suffix.lower() in (".png", ".jpg")
            and not set(path.relative_to(TUXPAINT_STAMPS).parts) & set(NOT_PHOTOS)
        ]
        if found:
            return sorted(found)
    with contextlib.suppress(ModuleNotFoundError):
        data = Path(str(importlib.resources.files("skimage") / "data"))
        return sorted(p for p in data.iterdir() if p.suffix in (".png", ".jpg"))
    return []


def make_photos(sources: list[Path], count: int, directory: Path) -> int:
    """`count` distinct JPEGs from `sources` (each use mirrored or cropped differently);
    returns their total size in bytes."""
    from PIL import Image, ImageOps

    directory.mkdir()
    total = 0
    for i in range(count):
        source, variant = sources[i % len(sources)], i // len(sources)
        with Image.open(source) as opened:
            image = opened.convert("RGBA")
        flat = Image.new("RGB", image.size, "white")
        flat.paste(image, mask=image.getchannel("A"))
        if variant % 2:
            flat = ImageOps.mirror(flat)
        if variant >= 2:  # crop a little more each round
            cut = min(variant * 4, 40)
            width, height = flat.size
            flat = flat.crop((cut, cut, max(cut + 8, width - cut), max(cut + 8, height - cut)))
        path = directory / f"IMG_{i:04d}.jpg"
        flat.save(path, quality=90)
        total += path.stat().st_size
    return total


def write_random_file(path: Path, mib: int) -> None:
    block = os.urandom(MIB)
    with open(path, "wb") as file:
        for _ in range(mib):
            file.write(block)
        file.flush()
        os.fsync(file.fileno())


# --- the benchmark ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VariantMount:
    name: str
    store: Path
    mountpoint: Path
    pid: int


class Bench:
    def __init__(
        self,
        options: Options,
        base: Path,
        store: Path,
        mountpoint: Path,
        pid: int,
        variants: tuple[VariantMount, ...] = (),
    ):
        self.options = options
        self.base = base  # outside the store: sources for cp
        self.store = store
        self.mountpoint = mountpoint
        self.pid = pid
        self.variants = variants
        self.can_drop_caches = self._try_drop_caches()
        self.samples: dict[str, Samples] = {}
        self.fio = shutil.which("fio")
        self.photo_bytes = 0

    @property
    def cold(self) -> str:
        return "cold" if self.can_drop_caches else "warm (cannot drop caches)"

    # --- helpers ---

    @staticmethod
    def _try_drop_caches() -> bool:
        os.sync()
        try:
            with open("/proc/sys/vm/drop_caches", "w") as file:
                file.write("3\n")
        except OSError:
            return False
        return True

    def drop_caches(self) -> None:
        """Empty the page, dentry and inode caches (the kernel forgets FUSE inodes too)."""
        if self.can_drop_caches:
            self._try_drop_caches()

    def settle(self, after: str | None = None, side: Side | None = None) -> float:
        """Wait until the daemon is off the CPU; note how long it stayed busy after `after`."""
        started = time.perf_counter()
        pids = [self.pid, *(variant.pid for variant in self.variants)]
        previous = sum(map(cpu_ticks, pids))
        while time.perf_counter() - started < IDLE_TIMEOUT:
            time.sleep(IDLE_WINDOW)
            current = sum(map(cpu_ticks, pids))
            if current - previous <= 1:
                break
            previous = current
        else:
            print("warning: the daemon never went idle", file=sys.stderr)
        busy = max(0.0, time.perf_counter() - started - IDLE_WINDOW)
        if after is not None and side is not None and side.is_mount:
            self.samples.setdefault(after, Samples()).busy_after.append(busy)
        return busy

    def sides(self) -> list[Side]:
        variants = [Side(variant.name, variant.mountpoint) for variant in self.variants]
        return [Side("native", self.store), Side("mount", self.mountpoint), *variants]

    # --- fixtures (made directly in the store or beside it, untimed) ---

    def make_fixtures(self) -> None:
        for store in (self.store, *(variant.store for variant in self.variants)):
            self._make_store_fixtures(store)
        o = self.options
        if "cp-big" in o.only:
            write_random_file(self.base / "big.bin", o.big_mib)
        if "cp-photos" in o.only:
            sources = photo_sources()
            if sources:
                self.photo_bytes = make_photos(sources, o.photos, self.base / "photos")
        os.sync()

    def _make_store_fixtures(self, store: Path) -> None:
        """What each store holds for the workloads (each mount reads its own store)."""
        o = self.options
        if "ls" in o.only:
            many = store / "many"
            many.mkdir()
            for i in range(o.listing_files):
                (many / f"img_{i:05d}.jpg").touch()
        if "cat" in o.only:
            small = store / "small"
            small.mkdir()
            for i in range(o.small_files):
                (small / f"note_{i:04d}.txt").write_bytes(os.urandom(o.small_kib * KIB))
        if "probe" in o.only:
            (store / "probe.bin").write_bytes(b"x")
        if "fio" in o.only and self.fio:
            write_random_file(store / "fio-read.bin", o.seq_mib)
            write_random_file(store / "fio-rand.bin", o.seq_mib)

    # --- workloads ---

    def workloads(self) -> list[Workload]:
        o = self.options
        found = [w for w in self._all_workloads() if w.key in o.only]
        if "fio" in o.only and not self.fio:
            print("warning: fio is not installed; skipping its rows", file=sys.stderr)
        if "cp-photos" in o.only and not self.photo_bytes:
            print("warning: no photos to copy; skipping cp -r", file=sys.stderr)
        return found

    def _all_workloads(self) -> Iterator[Workload]:
        o = self.options
        many, small = f"{o.listing_files:,} files", f"{o.small_files:,} x {o.small_kib} KiB"
        yield Workload(
            "ls",
            (
                Row("ls-cold", f"`ls -l` of {many}", self.cold),
                Row("ls-warm", f"`ls -l` of {many} again", "warm"),
            ),
            self.ls,
        )
        yield Workload(
            "cat",
            (
                Row("cat-cold", f"`cat` of {small} files", self.cold, self._small_mb()),
                Row("cat-warm", f"`cat` of {small} files again", "warm", self._small_mb()),
            ),
            self.cat,
        )
        if self.fio:
            seq, rand = f"{o.seq_mib} MiB", f"{o.rand_mib} MiB"
            yield Workload(
                "fio",
                (
                    Row(
                        "fio-seq-write",
                        f"fio sequential write, {seq}, 1 MiB blocks, fsync at end",
                        "-",
                        o.seq_mib,
                    ),
                    Row(
                        "fio-seq-read",
                        f"fio sequential read, {seq}, 1 MiB blocks",
                        self.cold,
                        o.seq_mib,
                    ),
                    Row(
                        "fio-rand-write",
                        f"fio random write, {rand} in 4 KiB blocks over {seq}, fsync at end",
                        "-",
                        o.rand_mib,
                    ),
                    Row(
                        "fio-rand-read",
                        f"fio random read, {rand} in 4 KiB blocks over {seq}",
                        self.cold,
                        o.rand_mib,
                    ),
                ),
                self.fio_jobs,
            )
        yield Workload(
            "cp-big",
            (Row("cp-big", f"`cp` of a {o.big_mib} MiB file in", "warm source", o.big_mib),),
            self.cp_big,
        )
        if self.photo_bytes:
            yield Workload(
                "cp-photos",
                (
                    Row(
                        "cp-photos",
                        f"`cp -r` of {o.photos:,} photos ({self.photo_bytes / MIB:.0f} MiB) in",
                        "warm source",
                        self.photo_bytes / MIB,
                        "JPEGs: the catalog hashes and queues each",
                    ),
                ),
                self.cp_photos,
            )

        yield Workload(
            "probe",
            (
                Row(
                    "probe",
                    f"{PROBES:,} x `getxattr security.capability` of an open file",
                    "warm",
                    note="the kernel's probe before each write(2); absent: ENODATA",
                ),
            ),
            self.probe,
        )

    def _small_mb(self) -> float:
        return self.options.small_files * self.options.small_kib * KIB / MIB

    def ls(self, side: Side, rep: int) -> Timings:
        command = ["ls", "-l", "--color=never", str(side.root / "many")]
        self.drop_caches()
        self.settle()
        cold = timed(lambda: run_quietly(command))
        warm = timed(lambda: run_quietly(command))
        return {"ls-cold": cold, "ls-warm": warm}

    def probe(self, side: Side, rep: int) -> Timings:
        fd = os.open(side.root / "probe.bin", os.O_RDONLY)

        def ask() -> None:
            for _ in range(PROBES):
                with contextlib.suppress(OSError):
                    os.getxattr(fd, "security.capability")

        try:
            self.settle()
            return {"probe": timed(ask)}
        finally:
            os.close(fd)

    def cat(self, side: Side, rep: int) -> Timings:
        directory = side.root / "small"
        names = sorted(str(directory / name) for name in os.listdir(directory))
        command = ["cat", *names]  # one process, like `cat dir/*`; the listing is untimed

        def cat_all() -> None:
            subprocess.run(command, stdout=subprocess.DEVNULL, check=True)

        self.drop_caches()
        os.listdir(directory)  # only the reading is timed: the names are known
        self.settle()
        cold = timed(cat_all)
        warm = timed(cat_all)
        return {"cat-cold": cold, "cat-warm": warm}

    def fio_jobs(self, side: Side, rep: int) -> Timings:
        o = self.options
        write_path = side.root / f"fio-write-{side.name}.bin"
        write_path.unlink(missing_ok=True)  # through the same side, so the caches agree
        timings = {
            "fio-seq-write": self._fio(write_path, "write", "1M", o.seq_mib, o.seq_mib),
        }
        self.settle()
        write_path.unlink()
        self.drop_caches()
        timings["fio-seq-read"] = self._fio(
            side.root / "fio-read.bin", "read", "1M", o.seq_mib, o.seq_mib
        )
        timings["fio-rand-write"] = self._fio(
            side.root / "fio-rand.bin", "randwrite", "4k", o.seq_mib, o.rand_mib
        )
        self.settle()
        self.drop_caches()
        timings["fio-rand-read"] = self._fio(
            side.root / "fio-rand.bin", "randread", "4k", o.seq_mib, o.rand_mib
        )
        return timings

    def _fio(self, path: Path, pattern: str, block: str, size_mib: int, io_mib: int) -> float:
        """Seconds fio took for one job, by its own clock (its start-up is not counted)."""
        assert self.fio is not None
        self.settle()
        command = [
            self.fio,
            "--name=bench",
            f"--filename={path}",
            f"--rw={pattern}",
            f"--bs={block}",
            f"--size={size_mib}M",
            f"--io_size={io_mib}M",
            "--ioengine=psync",
            "--randrepeat=1",  # the same offsets on both sides
            "--invalidate=0",  # caches are dropped (or kept) by this script
            "--output-format=json",
        ]
        if "write" in pattern:
            command += ["--end_fsync=1", "--fallocate=none"]
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        return fio_seconds(result.stdout, "write" if "write" in pattern else "read")

    def cp_big(self, side: Side, rep: int) -> Timings:
        target = side.root / f"big-{side.name}.bin"
        target.unlink(missing_ok=True)
        (self.base / "big.bin").read_bytes()  # the source's cache state is not measured
        self.settle()
        seconds = timed(lambda: run_quietly(["cp", str(self.base / "big.bin"), str(target)]))
        self.settle(after="cp-big", side=side)
        target.unlink()
        return {"cp-big": seconds}

    def cp_photos(self, side: Side, rep: int) -> Timings:
        target = side.root / f"photos-{side.name}-{rep}"
        source = self.base / "photos"
        for path in source.iterdir():
            path.read_bytes()
        self.settle()
        seconds = timed(lambda: run_quietly(["cp", "-r", str(source), str(target)]))
        self.settle(after="cp-photos", side=side)
        return {"cp-photos": seconds}

    # --- running ---

    def run(self) -> list[tuple[Row, Samples]]:
        workloads = self.workloads()
        sides = self.sides()
        for workload in workloads:
            for rep in range(self.options.repeat):
                order = sides if rep % 2 == 0 else sides[::-1]
                for side in order:
                    timings = workload.run(side, rep)
                    for key, seconds in timings.items():
                        self.samples.setdefault(key, Samples()).add(side.name, seconds)
                    shown = ", ".join(f"{k} {format_seconds(s)}" for k, s in timings.items())
                    print(f"  {workload.key} #{rep + 1} {side.name}: {shown}", file=sys.stderr)
        return [(row, self.samples[row.key]) for w in workloads for row in w.rows]


def fio_seconds(output: str, direction: str) -> float:
    """The job's run time from fio's JSON; from its summed latencies if too short for the
    millisecond clock (tiny smoke runs)."""
    job = json.loads(output[output.index("{") :])["jobs"][0]
    part = job[direction]
    if part["runtime"] > 0:
        return float(part["runtime"]) / 1000
    return float(part["lat_ns"]["mean"]) * int(part["total_ios"]) / 1e9


# --- describing the run ----------------------------------------------------------------------


def format_seconds(seconds: float) -> str:
    if seconds < 0.01:
        return f"{seconds * 1000:.2f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def format_ratio(ratio: float) -> str:
    return f"{ratio:.2f}x" if ratio < 10 else f"{ratio:.0f}x"


Baseline = dict[str, float]  # row key -> ratio of an earlier run


def variant_names(results: list[tuple[Row, Samples]]) -> list[str]:
    return list(results[0][1].variants) if results else []


def table(results: list[tuple[Row, Samples]], baseline: Baseline) -> str:
    variants = variant_names(results)
    extra = "".join(f" {name} / native |" for name in variants)
    before = " Before |" if baseline else ""
    lines = [
        "| Workload | Cache | Native (median) | Mount (median) | Mount / native |"
        f"{extra}{before} Per-run ratios | Notes |",
        "|---|---|--:|--:|--:|"
        + "--:|" * len(variants)
        + ("--:|" if baseline else "")
        + "--:|---|",
    ]
    for row, samples in results:
        native = statistics.median(samples.native)
        mount = statistics.median(samples.mount)
        low, high = samples.ratio_range()
        notes = [row.note] if row.note else []
        if row.megabytes:
            notes.append(f"{row.megabytes / native:,.0f} vs {row.megabytes / mount:,.0f} MiB/s")
        if samples.busy_after:
            busy = statistics.median(samples.busy_after)
            if busy >= 0.1:
                notes.append(f"daemon busy {busy:.1f} s after")
        earlier = ""
        if baseline:
            earlier = f" {format_ratio(baseline[row.key])} |" if row.key in baseline else " - |"
        earlier = (
            "".join(f" **{format_ratio(samples.ratio(name))}** |" for name in variants) + earlier
        )
        lines.append(
            f"| {row.label} | {row.cache} | {format_seconds(native)} | {format_seconds(mount)} "
            f"| **{format_ratio(samples.ratio())}** |{earlier} "
            f"{format_ratio(low)}-{format_ratio(high)} | {'; '.join(notes)} |"
        )
    return "\n".join(lines)


def targets(results: list[tuple[Row, Samples]]) -> str:
    ratio = {row.key: samples.ratio() for row, samples in results}
    lines = ["| Target | Rows | Worst ratio | Met |", "|---|---|--:|---|"]
    for keys, ceiling, what in TARGETS:
        present = [key for key in keys if key in ratio]
        if not present:
            continue
        worst = max(present, key=lambda key: ratio[key])
        met = "yes" if ratio[worst] <= ceiling else f"no ({worst})"
        lines.append(
            f"| {what} <= {ceiling:g}x | {', '.join(present)} | "
            f"{format_ratio(ratio[worst])} | {met} |"
        )
    return "\n".join(lines)


def plot(results: list[tuple[Row, Samples]], baseline: Baseline, path: Path) -> None:
    """Bars of mount/native per row (log scale), the baseline's beside them, targets as ticks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [row.key for row, _ in results]
    now = [samples.ratio() for _, samples in results]
    figure, axes = plt.subplots(figsize=(9, 0.45 * len(keys) + 1.5))
    positions = list(range(len(keys)))
    height = 0.38 if baseline else 0.7
    if baseline:
        before = [baseline.get(key, float("nan")) for key in keys]
        axes.barh(
            [p - height / 2 for p in positions], before, height, label="before", color="#bbbbbb"
        )
        axes.barh([p + height / 2 for p in positions], now, height, label="now", color="#3a75b0")
        axes.legend(loc="center right")
    else:
        axes.barh(positions, now, height, color="#3a75b0")
    ceilings = {key: ceiling for keys_, ceiling, _ in TARGETS for key in keys_}
    for position, key in zip(positions, keys, strict=True):
        if key in ceilings:
            axes.plot([ceilings[key]] * 2, [position - 0.45, position + 0.45], color="#c03030")
    axes.axvline(1.0, color="black", linewidth=0.8)
    axes.set_xscale("log")
    axes.set_yticks(positions, keys)
    axes.invert_yaxis()
    axes.set_xlabel("mount / native time (log scale; 1 = native; red tick = target)")
    axes.set_title("semfs passthrough overhead")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def git_version() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "--no-optional-locks", "-C", str(REPO), *args],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git(
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            "semfs/fs",
            "semfs/store",
            "semfs/catalog/tracker.py",
            "semfs/daemon/mount.py",
        )
    except (OSError, subprocess.CalledProcessError):
        return f"semfs {semfs.__version__} (commit unknown)"
    suffix = " + uncommitted changes to the passthrough" if dirty else ""
    return f"semfs {semfs.__version__}, commit {commit}{suffix}"


def machine_description(base: Path) -> list[str]:
    memory = "unknown"
    with contextlib.suppress(OSError), open("/proc/meminfo") as file:
        for line in file:
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / MIB:.1f} GiB"
    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as file:
        for line in file:
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    fio = "not installed"
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        fio = subprocess.run(
            ["fio", "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
    return [
        f"{len(os.sched_getaffinity(0))} CPUs usable (nproc) of {os.cpu_count()}, {cpu}",
        f"{memory} RAM; load average at start {load}",
        f"Linux {platform.release()}; store on {filesystem_of(base)}",
        f"Python {platform.python_version()}, pyfuse3 {pyfuse3.__version__}, "
        f"trio {trio.__version__}, {fio}",
    ]


def filesystem_of(path: Path) -> str:
    """The filesystem type and device holding `path`, from /proc/mounts."""
    best = ("", "unknown", "unknown")
    target = str(path.resolve())
    with contextlib.suppress(OSError), open("/proc/mounts") as file:
        for line in file:
            device, mountpoint, fstype, *_ = line.split()
            inside = target == mountpoint or target.startswith(mountpoint.rstrip("/") + "/")
            if inside and len(mountpoint) >= len(best[0]):
                best = (mountpoint, fstype, device)
    return f"{best[1]} ({best[2]})"


def command_line(argv: list[str]) -> str:
    executable = sys.executable
    with contextlib.suppress(ValueError):
        executable = str(Path(sys.executable).relative_to(REPO))
    script = Path(__file__)
    with contextlib.suppress(ValueError):
        script = script.resolve().relative_to(REPO)
    return shlex.join([executable, str(script), *argv])


def count_log_problems(settings: Settings) -> int:
    try:
        text = settings.log_path.read_text(errors="replace")
    except OSError:
        return 0
    return sum(1 for line in text.splitlines() if " ERROR " in line or "Traceback" in line)


def results_section(
    results: list[tuple[Row, Samples]],
    info: RunInfo,
    options: Options,
    baseline: Baseline,
    image: str | None,
) -> str:
    rss = f"{info.peak_rss_kib / 1024:.0f} MiB" if info.peak_rss_kib is not None else "unknown"
    machine = "\n".join(f"- {line}" for line in info.machine)
    chart = f"\n![mount/native per workload]({image})\n" if image else ""
    before = (
        f' "Before" is the ratio measured by an earlier run ({options.baseline.name}).'
        if baseline and options.baseline
        else ""
    )
    return f"""{RESULTS_BEGIN}
<!-- written by scripts/bench_passthrough.py; edit the prose outside these markers -->

Each workload ran {options.repeat} times per side, interleaved.{before}

{table(results, baseline)}

{targets(results)}
{chart}
```
{info.command}
```

- Date: {info.date}
- Version: {info.version}
- Mount settings: {info.settings}
{machine}
- Total runtime: {info.total_seconds:.0f} s
- Daemon peak RSS (VmHWM) after the run: {rss}
- Errors or tracebacks in the daemon's log: {info.daemon_log_problems}

For reference: {REFERENCE}
{RESULTS_END}"""


def write_page(path: Path, section: str) -> None:
    """Replace the results between the markers, keeping the prose; or start a page."""
    old = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(RESULTS_BEGIN) + ".*?" + re.escape(RESULTS_END), re.S)
    if pattern.search(old):
        text = pattern.sub(lambda _: section, old, count=1)
    else:
        text = f"# Benchmarks: passthrough overhead\n\n{section}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def save_json(path: Path, results: list[tuple[Row, Samples]], info: RunInfo) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "key": row.key,
            "label": row.label,
            "cache": row.cache,
            "ratio": samples.ratio(),
            "native": samples.native,
            "mount": samples.mount,
            **(
                {
                    "variants": {
                        name: {"ratio": samples.ratio(name), "times": times}
                        for name, times in samples.variants.items()
                    }
                }
                if samples.variants
                else {}
            ),
        }
        for row, samples in results
    ]
    path.write_text(
        json.dumps({"version": info.version, "date": info.date, "rows": rows}, indent=1) + "\n"
    )


def load_baseline(path: Path | None) -> Baseline:
    if path is None:
        return {}
    data = json.loads(path.read_text())
    return {row["key"]: float(row["ratio"]) for row in data["rows"]}


# --- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    options = parse_options(arguments)
    if not os.path.exists("/dev/fuse"):
        print("bench_passthrough: /dev/fuse is missing; FUSE is not available", file=sys.stderr)
        return 1
    baseline = load_baseline(options.baseline)
    started = time.perf_counter()
    base = Path(tempfile.mkdtemp(prefix="semfs-bench-", dir=options.base_dir))
    store, mountpoint = base / "store", base / "mnt"
    store.mkdir()
    mountpoint.mkdir()
    machine = machine_description(base)
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    version = git_version()  # what the daemon runs: the code as it is now
    try:
        with mounted(store, mountpoint) as pid, contextlib.ExitStack() as others:
            settings = Settings.load(store)
            variants = []
            for name, mount_options in options.variants:
                (base / f"store-{name}").mkdir()
                (base / f"mnt-{name}").mkdir()
                variant_pid = others.enter_context(
                    mounted(base / f"store-{name}", base / f"mnt-{name}", mount_options)
                )
                variants.append(
                    VariantMount(name, base / f"store-{name}", base / f"mnt-{name}", variant_pid)
                )
            bench = Bench(options, base, store, mountpoint, pid, tuple(variants))
            bench.settle()  # the mount-time reconcile scan (of an empty store)
            bench.make_fixtures()
            bench.settle()  # the daemon may notice the fixtures
            print(f"semfs daemon pid {pid}; store {store}", file=sys.stderr)
            results = bench.run()
            bench.settle()
            rss = peak_rss_kib(pid)
        log_problems = count_log_problems(settings)
    finally:
        if any(os.path.ismount(path) for path in (mountpoint, *base.glob("mnt-*"))):
            print(f"warning: leaving {base} in place: still mounted", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
    info = RunInfo(
        command=command_line(arguments),
        date=date,
        version=version,
        machine=machine,
        settings=(
            f"entry and attribute timeouts {settings.entry_timeout:g} s / "
            f"{settings.attr_timeout:g} s, {settings.io_threads} I/O threads"
            + "".join(f"; {name}: -o {text}" for name, text in options.variants)
        ),
        peak_rss_kib=rss,
        daemon_log_problems=log_problems,
        total_seconds=time.perf_counter() - started,
    )
    print(table(results, baseline))
    print()
    print(targets(results))
    print(f"{info.version}; daemon peak RSS {rss} KiB; total {info.total_seconds:.0f} s")
    if options.json_path is not None:
        save_json(options.json_path, results, info)
    if options.output is not None:
        image = options.output.with_suffix(".png")
        plot(results, baseline, image)
        write_page(options.output, results_section(results, info, options, baseline, image.name))
        print(f"wrote {options.output} and {image}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
