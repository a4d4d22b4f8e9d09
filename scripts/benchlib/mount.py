"""One store through the real mount: startup, `ls search/<new query>/` end to end with its
parts, `semfs search`, and the daemon's memory.

End to end is `os.listdir(MOUNT/search/<q>)` in this process (opendir, getdents, close:
what `ls` does without stat-ing). The daemon logs how long each search took inside it
(`search 'q': n results in X ms`: query encoding, index and catalog); FUSE and
scheduling are the rest. Encoding and index lookup are split in a separate process that
loads the same store read-only (`measure_parts`).
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from semfs.catalog.database import Catalog
from semfs.config import Settings
from semfs.search.engine import Engine

# The daemon logs the query with %r: in double quotes if it holds an apostrophe.
_SEARCH_LOG = re.compile(r"""search (?:'(.*)'|"(.*)"): (\d+) results in ([0-9.]+) ms""")
_RECONCILE_LOG = re.compile(r"reconcile finished in ([0-9.]+) s: (.*)")


@dataclass
class MountResult:
    mount_s: float = 0.0  # `semfs mount` returned (the kernel lists the mount)
    listable_s: float = 0.0  # first os.listdir(MOUNT) answered
    first_search_s: float = 0.0  # first `ls search/<q>/` answered (models and index loaded)
    reconcile_s: float = 0.0  # the daemon's reconcile scan, from its log
    reconcile_summary: str = ""
    first_hits: int = 0
    new: list[float] = field(default_factory=list)  # seconds per new query, end to end
    in_daemon: list[float] = field(default_factory=list)  # the daemon's own search time
    hits: list[int] = field(default_factory=list)
    again: list[float] = field(default_factory=list)  # the same queries, cached
    cli: list[float] = field(default_factory=list)  # `semfs search` through the mount
    rss_mib: dict[str, float] = field(default_factory=dict)
    unmount_s: float = 0.0


@dataclass
class PartsResult:
    encode: list[float] = field(default_factory=list)
    lookup: list[float] = field(default_factory=list)  # index + catalog check
    index_only: list[float] = field(default_factory=list)  # the index's shortlist alone
    load_s: float = 0.0
    cli_own: list[float] = field(default_factory=list)  # `semfs search` unmounted


def semfs(*args: object) -> str:
    result = subprocess.run([sys.executable, "-m", "semfs", *map(str, args)],
                            capture_output=True, text=True, check=True)  # fmt: skip
    return result.stdout


def timed(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def memory_mib(pid: int) -> dict[str, float]:
    """VmRSS, RssAnon (heap: models, caches), RssFile (mapped files: the Annoy base,
    libraries; the kernel can drop these pages) and VmHWM (peak), in MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values


def _log_text(store: Path, start: int) -> str:
    with open(Settings.load(store).log_path, "rb") as file:
        file.seek(start)
        return file.read().decode(errors="replace")


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the benchmark waited too long for {what}")
        time.sleep(0.05)


def measure_mount(
    store: Path, mountpoint: Path, embedder: str, queries: list[str], cli_queries: int
) -> MountResult:
    result = MountResult()
    log_path = Settings.load(store).log_path
    log_start = log_path.stat().st_size if log_path.exists() else 0
    mountpoint.mkdir(exist_ok=True)
    started = time.perf_counter()
    semfs("mount", "--embedder", embedder, store, mountpoint)
    result.mount_s = time.perf_counter() - started
    try:
        os.listdir(mountpoint)
        result.listable_s = time.perf_counter() - started
        pid = int(Settings.load(store).lock_path.read_text().split()[0])
        result.rss_mib["listable"] = memory_mib(pid)["VmRSS"]
        search = mountpoint / "search"
        result.first_hits = len(os.listdir(search / queries[0]))
        result.first_search_s = time.perf_counter() - started

        def reconciled() -> bool:
            return _RECONCILE_LOG.search(_log_text(store, log_start)) is not None

        _wait_for(reconciled, 1800, "the reconcile scan")
        match = _RECONCILE_LOG.search(_log_text(store, log_start))
        assert match is not None
        result.reconcile_s, result.reconcile_summary = float(match.group(1)), match.group(2)
        time.sleep(1.0)  # let the ingest worker's start-up checks finish
        idle = memory_mib(pid)
        result.rss_mib.update({f"idle {k}": v for k, v in idle.items()})
        peak = 0.0
        for query in queries[1:]:
            result.new.append(timed(lambda q=query: os.listdir(search / q)))
            peak = max(peak, memory_mib(pid)["VmRSS"])
        result.again = [timed(lambda q=q: os.listdir(search / q)) for q in queries[1:]]
        result.cli = [
            timed(lambda q=q: semfs("search", store, q)) for q in queries[1:][:cli_queries]
        ]
        after = memory_mib(pid)
        result.rss_mib.update({f"queries {k}": v for k, v in after.items()})
        result.rss_mib["queries max VmRSS"] = max(peak, after["VmRSS"])
        _read_daemon_times(result, _log_text(store, log_start), queries[1:])
    finally:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "semfs", "unmount", str(mountpoint)], check=False)
        result.unmount_s = time.perf_counter() - started
    return result


def _read_daemon_times(result: MountResult, log: str, queries: list[str]) -> None:
    # The first search of each query is the `ls`'s own; while ingest indexes photos the
    # watch searches a folder again (its query vector cached: 2-3 ms), and those come after.
    logged: dict[str, tuple[int, float]] = {}
    for m in _SEARCH_LOG.finditer(log):
        logged.setdefault(m.group(1) or m.group(2), (int(m.group(3)), float(m.group(4)) / 1000))
    for query in queries:
        hits, seconds = logged.get(query, (-1, float("nan")))
        result.hits.append(hits)
        result.in_daemon.append(seconds)


def measure_parts(
    store: Path, embedder: str, queries: list[str], k: int = 50, cli_own: int = 0
) -> PartsResult:
    """Encoding and lookup apart, in this process, on the unmounted store."""
    result = PartsResult()
    settings = Settings.load(store, embedder=embedder)
    catalog = Catalog.open(settings.catalog_path)
    try:
        engine = Engine(settings, catalog)
        result.load_s = timed(lambda: engine.load(read_only=True))
        engine.embedder.embed(["warm up the session"])
        result.encode = [timed(lambda q=q: engine.embedder.embed([q])) for q in queries]
        searcher, cut = engine.text.searcher, engine.text.max_distance
        for query in queries:  # fills the query cache: what follows is index + catalog
            searcher.search(query, k, cut)
        result.lookup = [timed(lambda q=q: searcher.search(q, k, cut)) for q in queries]
        vectors = [engine.embedder.embed([q])[0] for q in queries]
        result.index_only = [timed(lambda v=v: engine.text.index.search(v, 2 * k + 16))
                             for v in vectors]  # fmt: skip
    finally:
        catalog.close()
    result.cli_own = [timed(lambda q=q: semfs("search", store, q, "--embedder", embedder))
                      for q in queries[:cli_own]]  # fmt: skip
    return result


def p50(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p95(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


# The daemon's states in the --states blocks (measure_states): what each means.
STATES = {
    "busy": "ingest running: real photos copied in through the mount just before, being "
    "decoded, captioned, embedded and given facets (the classifier captioner gives their "
    "image features too; the features and text passes run only when no image waits)",
    "idle": "every queue of the daemon empty",
    "stress": "a worst case of Python-level churn, not a user's daemon: every image's "
    "features queued again, and the backfill fails on the store's empty images at thousands "
    "a second (catalog reads and writes, logging), where real photos go ~30 a second",
}
# Of a block's wall time, ingest's threads' CPU: the least a busy block holds, the
# most an idle one does.
MIN_INGEST_SHARE = 0.05
BUSY_PREFIX = "bench-busy-"  # the directories busy copies photos into, at the mount's root
_QUEUES = {"ingest": "ingest_queue", "features": "feature_queue", "text": "text_queue"}


@dataclass(frozen=True)
class Block:
    state: str  # a key of STATES
    queries: list[str]
    photos: Path | None = None  # busy: a directory of photos, copied in under its name
    # Seconds between two queries (0: back to back). A person clicking through folders
    # pauses; with 50 ms pauses a search took 1.6-1.9x the CPU time on this machine.
    pause: float = 0.0


@dataclass
class StatesResult:
    """New queries through one mount in blocks, each in a state of STATES. Every queue is
    counted before and after each block (`queues_before`, `queues_after`), and the CPU time
    of ingest's threads during it, so that the state is checked, not assumed (state_held)."""

    blocks: list[dict[str, object]] = field(default_factory=list)
    daemon_semfs: str = ""  # where the daemon imports semfs from (PYTHONPATH, cwd)
    # The daemon's memory (memory_mib) before and after `memory_queries` more new queries
    memory_before: dict[str, float] = field(default_factory=dict)
    memory_after: dict[str, float] = field(default_factory=dict)
    memory_queries: int = 0
    files_at_start: int = 0  # the catalog's files: the busy photos leave none behind
    files_at_end: int = 0


def queues(db: sqlite3.Connection) -> dict[str, int]:
    """How many items wait in each of the daemon's queues (a store made before the text
    pass has no text queue)."""
    counts = {}
    for name, table in _QUEUES.items():
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone():
            counts[name] = int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    return counts


def _files(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT count(*) FROM files").fetchone()[0])


def _photos(db: sqlite3.Connection) -> int:
    """The catalog's files under the busy directories ("." follows "-")."""
    low, high = BUSY_PREFIX.encode(), BUSY_PREFIX[:-1].encode() + b"."
    query = "SELECT count(*) FROM files WHERE dir >= ? AND dir < ?"
    return int(db.execute(query, (low, high)).fetchone()[0])


def state_held(
    state: str, before: dict[str, int], after: dict[str, int], ingest_share: float
) -> bool:
    """Busy: photos still waited for ingest at the end of the block, and ingest worked
    during it: its queue shrank, or its threads ran at least MIN_INGEST_SHARE of the
    block's wall time (`ingest_share`: a block of fast queries can end before ingest
    stores its next batch of 8, and ingest steps aside while searches run, taking turns
    with a client that searches without pause: search/foreground.py). Stress: the same
    of the features queue. Idle: every queue empty before and after, and ingest's
    threads (which also run the idle passes, such as the EXIF facts of a new store's
    images, with every queue empty) below MIN_INGEST_SHARE."""
    queue = {"busy": "ingest", "stress": "features"}.get(state)
    if queue is None:
        quiet = ingest_share < MIN_INGEST_SHARE
        return quiet and not any(before.values()) and not any(after.values())
    worked = after[queue] < before[queue] or ingest_share >= MIN_INGEST_SHARE
    return after[queue] > 0 and worked


def thread_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of the daemon's threads: ingest's (those at a niceness above 0: the
    ingest thread and the decoders it starts) and all of them."""
    ingest = total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            try:  # precise where the kernel has it (CONFIG_SCHED_DEBUG), else ticks
                sched = (task / "sched").read_text()
                ran = float(sched.split("se.sum_exec_runtime")[1].split(":")[1].split()[0]) / 1000
            except (OSError, IndexError):
                ran = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError):
            continue  # the thread ended
        total += ran
        if int(fields[16]) > 0:
            ingest += ran
    return ingest, total


class DaemonStates:
    """Puts the mounted daemon in a state of STATES, through the mount and its catalog."""

    def __init__(self, db: sqlite3.Connection, mountpoint: Path, pid: int) -> None:
        self.db = db
        self.mountpoint = mountpoint
        self.pid = pid

    def enter(self, block: Block) -> None:
        """Busy and stress return as soon as the daemon is seen working (stress at a small
        size drains its queue within seconds)."""
        self.idle()
        if block.state == "busy":
            assert block.photos is not None, "busy needs photos"
            self._copy_photos(block.photos)
        elif block.state == "stress":
            self._queue_every_feature()
        else:
            time.sleep(1.0)  # what the removal set going settles

    def idle(self) -> None:
        """Removes the busy photos through the mount (the catalog follows: their queue
        entries go with them) and empties the features and text queues, in one
        transaction of this process (emptying the text queue matters for old stores: one
        made before the text pass had a queue of every image); then waits for ingest's
        threads to rest."""
        photos = self.leftovers()
        for directory in photos:
            shutil.rmtree(directory)
        _wait_for(lambda: not _photos(self.db) and not queues(self.db)["ingest"], 300,
                  "the catalog to forget the busy photos")  # fmt: skip
        if photos:
            time.sleep(0.5)  # a batch taken before the removal finishes (and is dropped)
        with self.db:
            for name in ("features", "text"):
                if name in queues(self.db):
                    self.db.execute(f"DELETE FROM {_QUEUES[name]}")
        _wait_for(self._ingest_rests, 900, "ingest's idle passes (a new store's EXIF facts)")

    def _ingest_rests(self, window: float = 0.5) -> bool:
        """Whether ingest's threads ran under MIN_INGEST_SHARE of the next `window`: an
        idle pass (such as the EXIF facts of a new store's images) runs with every queue
        empty."""
        before = thread_cpu(self.pid)[0]
        time.sleep(window)
        return (thread_cpu(self.pid)[0] - before) / window < MIN_INGEST_SHARE

    def leftovers(self) -> list[Path]:
        return sorted(self.mountpoint.glob(f"{BUSY_PREFIX}*"))

    def _copy_photos(self, photos: Path) -> None:
        """Copies the photos in as `cp -r` would, then waits until the catalog has every
        one and ingest has taken some (its models loaded)."""
        count = sum(1 for _ in photos.iterdir())
        shutil.copytree(photos, self.mountpoint / photos.name, copy_function=shutil.copyfile)
        _wait_for(lambda: _photos(self.db) >= count and queues(self.db)["ingest"] < count,
                  300, "ingest to start")  # fmt: skip

    def _queue_every_feature(self) -> None:
        """Queues every described image's features again; waits until the daemon takes
        from the queue."""
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO feature_queue (file_id, generation) SELECT file_id, "
                "(SELECT coalesce(max(generation), 0) + 1 FROM feature_queue) FROM descriptions"
            )
        full = queues(self.db)["features"]
        _wait_for(lambda: queues(self.db)["features"] < full, 600,
                  "the features backfill to start")  # fmt: skip


def measure_states(
    store: Path,
    mountpoint: Path,
    embedder: str,
    blocks: list[Block],
    memory_queries: list[str] | None = None,
) -> StatesResult:
    result = StatesResult()
    log_path = Settings.load(store).log_path
    log_start = log_path.stat().st_size if log_path.exists() else 0
    mountpoint.mkdir(exist_ok=True)
    semfs("mount", "--embedder", embedder, store, mountpoint)
    db = sqlite3.connect(Settings.load(store).catalog_path, timeout=60)
    try:
        pid = int(Settings.load(store).lock_path.read_text().split()[0])
        environ = dict(
            item.split("=", 1)
            for item in Path(f"/proc/{pid}/environ").read_text().split("\0")
            if "=" in item
        )
        result.daemon_semfs = (
            f"PYTHONPATH={environ.get('PYTHONPATH', '')} cwd={os.readlink(f'/proc/{pid}/cwd')}"
        )
        search = mountpoint / "search"
        os.listdir(search / "warm up the embedder and index")

        def reconciled() -> bool:
            return _RECONCILE_LOG.search(_log_text(store, log_start)) is not None

        _wait_for(reconciled, 1800, "the reconcile scan")
        states = DaemonStates(db, mountpoint, pid)
        for leftover in states.leftovers():  # an interrupted run's photos
            print(f"  removing {leftover.name}, left by an earlier run", flush=True)
        states.idle()
        result.files_at_start = _files(db)
        try:
            for block in blocks:
                _measure_block(result, states, block, search, store, log_start)
            if memory_queries:
                states.idle()
                result.memory_before = memory_mib(pid)
                for query in memory_queries:
                    os.listdir(search / query)
                result.memory_after = memory_mib(pid)
                result.memory_queries = len(memory_queries)
                print(f"  memory after {len(memory_queries)} more queries: "
                      f"{result.memory_after}", flush=True)  # fmt: skip
        finally:
            states.idle()  # the photos out, the queues empty: the store as it was
            result.files_at_end = _files(db)
    finally:
        db.close()
        subprocess.run([sys.executable, "-m", "semfs", "unmount", str(mountpoint)], check=False)
    return result


def _measure_block(
    result: StatesResult,
    states: DaemonStates,
    block: Block,
    search: Path,
    store: Path,
    log_start: int,
) -> None:
    states.enter(block)
    before, load_before = queues(states.db), os.getloadavg()
    cpu_before, started = thread_cpu(states.pid), time.perf_counter()
    times = []
    for query in block.queries:
        time.sleep(block.pause)
        times.append(timed(lambda q=query: os.listdir(search / q)))
    seconds, cpu_after = time.perf_counter() - started, thread_cpu(states.pid)
    after = queues(states.db)
    ingest_cpu, daemon_cpu = (a - b for a, b in zip(cpu_after, cpu_before, strict=True))
    timing = MountResult()
    _read_daemon_times(timing, _log_text(store, log_start), block.queries)
    held = state_held(block.state, before, after, ingest_cpu / seconds)
    result.blocks.append({
        "state": block.state, "queries": block.queries, "new": times,
        "in_daemon": timing.in_daemon, "queues_before": before, "queues_after": after,
        "non_empty": sorted(n for n in before if before[n] or after[n]), "state_held": held,
        "photos": sum(1 for _ in block.photos.iterdir()) if block.photos else 0,
        "pause_s": block.pause,
        "seconds": seconds, "ingest_cpu_s": ingest_cpu, "daemon_cpu_s": daemon_cpu,
        "load_average_before": load_before, "load_average": os.getloadavg(),
    })  # fmt: skip
    print(f"  {block.state}: p50 {p50(times) * 1000:.1f} ms (daemon "
          f"{p50(timing.in_daemon) * 1000:.1f}), queues {before} -> {after}, ingest's "
          f"threads {ingest_cpu:.2f} CPU s of the block's {seconds:.2f} s, load "
          f"{os.getloadavg()[0]:.2f}: {'' if held else 'NOT '}{block.state}",
          flush=True)  # fmt: skip
