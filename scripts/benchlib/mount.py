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

_SEARCH_LOG = re.compile(r"search '(.*)': (\d+) results in ([0-9.]+) ms")
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
    logged = {m.group(1): (int(m.group(2)), float(m.group(3)) / 1000)
              for m in _SEARCH_LOG.finditer(log)}  # fmt: skip
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


@dataclass
class StatesResult:
    """New queries through one mount in alternating blocks, the daemon busy (every
    image's features queued again, so the features backfill runs) or idle (the queue
    emptied): `feature_queue` counted before and after each block shows which it was."""

    blocks: list[dict[str, object]] = field(default_factory=list)
    daemon_semfs: str = ""  # where the daemon imports semfs from (PYTHONPATH, cwd)
    # The daemon's memory (memory_mib) before and after `memory_queries` more new queries
    memory_before: dict[str, float] = field(default_factory=dict)
    memory_after: dict[str, float] = field(default_factory=dict)
    memory_queries: int = 0


def _feature_queue(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT count(*) FROM feature_queue").fetchone()[0])


def _text_queue(db: sqlite3.Connection) -> int:
    if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'text_queue'").fetchone():
        return 0
    return int(db.execute("SELECT count(*) FROM text_queue").fetchone()[0])


def _set_busy(db: sqlite3.Connection, busy: bool) -> None:
    """Queue every described image's features again (busy) or none (idle), in one
    transaction of this process; busy waits until the daemon takes from the queue. The
    text pass (OCR, after the features) is emptied in both: a store made before it had a
    queue of every image, which kept an 'idle' daemon reading the empty images."""
    with db:
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'text_queue'").fetchone():
            db.execute("DELETE FROM text_queue")
        if busy:
            db.execute(
                "INSERT OR REPLACE INTO feature_queue (file_id, generation) SELECT file_id, "
                "(SELECT coalesce(max(generation), 0) + 1 FROM feature_queue) FROM descriptions"
            )
        else:
            db.execute("DELETE FROM feature_queue")
    if busy:
        full = _feature_queue(db)
        _wait_for(lambda: _feature_queue(db) < full, 600, "the features backfill to start")
    time.sleep(1.0)


def measure_states(
    store: Path,
    mountpoint: Path,
    embedder: str,
    blocks: list[tuple[bool, list[str]]],
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
        for busy, queries in blocks:
            _set_busy(db, busy)
            before, started = _feature_queue(db), time.perf_counter()
            times = [timed(lambda q=q: os.listdir(search / q)) for q in queries]
            seconds, after = time.perf_counter() - started, _feature_queue(db)
            timing = MountResult()
            _read_daemon_times(timing, _log_text(store, log_start), queries)
            result.blocks.append({
                "state": "busy" if busy else "idle", "queries": queries, "new": times,
                "in_daemon": timing.in_daemon, "queue_before": before, "queue_after": after,
                "seconds": seconds, "load_average": os.getloadavg(),
                "text_queue_after": _text_queue(db),
            })  # fmt: skip
            print(f"  {result.blocks[-1]['state']}: p50 {p50(times) * 1000:.1f} ms, queue "
                  f"{before} -> {after}", flush=True)  # fmt: skip
        if memory_queries:
            _set_busy(db, False)
            result.memory_before = memory_mib(pid)
            for query in memory_queries:
                os.listdir(search / query)
            result.memory_after = memory_mib(pid)
            result.memory_queries = len(memory_queries)
            print(f"  memory after {len(memory_queries)} more queries: {result.memory_after}",
                  flush=True)  # fmt: skip
    finally:
        db.close()
        subprocess.run([sys.executable, "-m", "semfs", "unmount", str(mountpoint)], check=False)
    return result
