"""Mounting and unmounting: checks first, then the pyfuse3 main loop on trio.

`mount(..., foreground=False)` starts the same command with `--foreground` as a child in
its own session, logging to STORE/.semfs/mount.log, and returns once the kernel shows
the mount (or prints why the child failed). A fresh process is simpler and safer than
forking a Python that may already hold threads and open databases.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any

import pyfuse3
import trio

from semfs import heap
from semfs.catalog.database import Catalog
from semfs.catalog.tracker import ChangeTracker
from semfs.config import FSTYPE, Settings, private_opener, write_config_template
from semfs.daemon.logs import keep_recent_records
from semfs.daemon.mounttable import find_mount, fuse_unmount, is_stale
from semfs.daemon.options import MountOptions, format_mount_options
from semfs.daemon.reports import root_reports
from semfs.daemon.sdnotify import notify
from semfs.daemon.tidy import tidy_heap
from semfs.errors import QuietError
from semfs.fs.descriptions import StoredDescriptions
from semfs.fs.operations import SemfsOperations
from semfs.fs.passthrough import Passthrough
from semfs.fs.views.places import PlacesView
from semfs.fs.views.registry import ViewRegistry
from semfs.fs.views.search import SearchView
from semfs.fs.views.similar import SimilarView
from semfs.fs.views.tags import TagsView
from semfs.fs.views.tree_view import TreeView
from semfs.ingest.worker import IngestWorker
from semfs.ml.captioner import captioner_factory
from semfs.ml.embedder import embedder_factory
from semfs.search.engine import Engine
from semfs.search.foreground import Foreground
from semfs.store.backing import BackingStore

log = logging.getLogger(__name__)

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0


@dataclass(frozen=True)
class MountRequest:
    settings: Settings
    mountpoint: str  # absolute, not resolved: resolving would touch a dead mount
    debug: bool = False
    read_only: bool = False
    # Settings given on the command line or as -o options, handed on to the daemon.
    overrides: dict[str, Any] = field(default_factory=dict)
    nonempty: bool = field(default=False, kw_only=True)  # mount over files (-o nonempty)
    # Where each setting came from (Settings.load_with_sources), for `semfs config`.
    sources: dict[str, str] = field(default_factory=dict)


def mount(request: MountRequest, foreground: bool) -> None:
    _check_paths(request)
    _check_mountpoint(request.mountpoint, request.nonempty)
    # A model name that names nothing is refused now, not after the daemon has started.
    captioner_factory(request.settings.captioner)
    embedder_factory(request.settings.embedder)
    holder = read_lock_holder(request.settings)
    if holder is not None and holder.search_dir and _finishing(holder):
        # Unmounted with umount(8), which returns before the daemon has exited: it is
        # finishing its batch, and the lock is free in a moment.
        holder = _wait_for_release(request.settings, STOP_TIMEOUT)
    if holder is not None:
        # The lock's holder is a mount (with a search dir) or `semfs index` (which says so).
        what = f"already mounted at {holder.mountpoint}" if holder.search_dir else holder.mountpoint
        raise QuietError(f"store {request.settings.store} is {what} (pid {holder.pid})")
    if foreground:
        serve(request)
    else:
        _start_daemon(request)


def _check_paths(request: MountRequest) -> None:
    store = str(request.settings.store)
    mountpoint = os.path.realpath(request.mountpoint)
    for inner, outer in ((mountpoint, store), (store, mountpoint)):
        if inner == outer or inner.startswith(outer.rstrip("/") + "/"):
            raise QuietError(
                f"mountpoint {request.mountpoint} and store {store} must not contain each other"
            )


def _check_mountpoint(mountpoint: str, nonempty: bool = False) -> None:
    entry = find_mount(mountpoint)
    if entry is None:
        if not os.path.isdir(mountpoint):
            raise QuietError(f"mountpoint {mountpoint} does not exist or is not a directory")
    elif not is_stale(mountpoint):
        raise QuietError(
            f"{mountpoint} is already mounted ({entry.fstype} from {entry.source}); "
            f"unmount it first"
        )
    elif entry.fstype != FSTYPE:
        raise QuietError(
            f"{mountpoint} is a dead {entry.fstype} mount (its daemon is gone); "
            f"clean it up with: fusermount3 -u {mountpoint}"
        )
    else:
        print(
            f"semfs: {mountpoint} is a dead semfs mount of {entry.source} (its daemon stopped "
            f"without unmounting, e.g. it crashed or was killed); cleaning it up. Nothing is "
            f"lost: the catalog resumes from disk.",
            file=sys.stderr,
        )
        fuse_unmount(mountpoint, lazy=True)
    if not nonempty:
        _check_empty(mountpoint)


def _check_empty(mountpoint: str) -> None:
    """Files in the mountpoint would be hidden while mounted, and look lost: refused
    unless asked for with -o nonempty, as FUSE 2 did (libfuse 3 no longer checks). The
    boot path is unaffected: systemd and fstab mount at empty directories."""
    try:
        with os.scandir(mountpoint) as entries:
            names = [entry.name for entry, _ in zip(entries, range(4), strict=False)]
    except OSError:
        return  # cannot be listed by this user: nothing to tell; the kernel decides
    if names:
        shown = ", ".join(repr(name) for name in names[:3]) + (", ..." if len(names) > 3 else "")
        raise QuietError(
            f"mountpoint {mountpoint} is not empty ({shown}): mounting would hide its files "
            f"until unmounted. Use an empty directory, or mount over them with -o nonempty"
        )


# --- the store lock: one mount per store -------------------------------------------


@dataclass(frozen=True)
class LockHolder:
    pid: int
    mountpoint: str
    search_dir: str = ""  # the name of its search view ("" when not a mount)


def read_lock_holder(settings: Settings) -> LockHolder | None:
    """Who holds the store's mount lock now, if anyone."""
    try:
        with open(settings.lock_path, "r+") as file:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid, mountpoint, search_dir, *_ = [*file.read().split("\n"), "", "", ""]
                return LockHolder(int(pid or 0), mountpoint.strip(), search_dir.strip())
            fcntl.flock(file, fcntl.LOCK_UN)
    except FileNotFoundError:
        pass
    return None


@contextlib.contextmanager
def hold_store_lock(settings: Settings, holder: str) -> Iterator[None]:
    """Hold the store lock (one writer per store: a mount or a bulk index)."""
    lock = _take_lock(settings, holder)
    try:
        yield
    finally:
        lock.close()


def _take_lock(settings: Settings, mountpoint: str) -> IO[str]:
    settings.make_state_dir()
    file = open(settings.lock_path, "a+", opener=private_opener)  # noqa: SIM115 - held while mounted
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        file.close()
        raise QuietError(f"store {settings.store} is already mounted elsewhere") from None
    file.truncate(0)
    search_dir = settings.search_dir_name if mountpoint.startswith("/") else ""
    file.write(f"{os.getpid()}\n{mountpoint}\n{search_dir}\n")
    file.flush()
    return file


# --- serving --------------------------------------------------------------------------


def _fuse_options(request: MountRequest) -> set[str]:
    # fsname shows the store in `mount` output and lets `semfs unmount` find it; libfuse
    # splits options at commas, so escape them.
    fsname = str(request.settings.store).replace("\\", "\\\\").replace(",", "\\,")
    options = set(pyfuse3.default_options) | {f"fsname={fsname}", "subtype=semfs"}
    if request.settings.allow_other:
        options.add("allow_other")
    if request.read_only:
        options.add("ro")
    return options


def serve(request: MountRequest) -> None:
    """Mount and serve in this process until unmounted or signalled."""
    settings = request.settings
    # Two arenas: the low-memory profile's many threads keep less of what they freed.
    tune_malloc(arenas=2 if settings.profile == "low-memory" else None)
    limit_blas_threads()
    heap.freeze_after_full_collections()  # full collections' pauses stay short
    recent = keep_recent_records()
    lock = _take_lock(settings, request.mountpoint)
    write_config_template(settings)
    catalog = Catalog.open(settings.catalog_path)
    os.umask(0)  # modes asked for by callers are applied exactly (FUSE passes their umask)
    engine = Engine(settings, catalog)
    notifier = TrioNotifier()
    ingest_store = BackingStore(os.fsencode(settings.store))
    ingest = IngestWorker(engine, ingest_store, on_indexed=notifier.notify)

    def catalog_changed() -> None:
        ingest.wake()
        engine.changed()
        notifier.notify()

    tracker = ChangeTracker(settings, catalog, on_applied=catalog_changed)
    passthrough = Passthrough(settings, tracker)
    views: list[TreeView] = [
        view_class(engine, passthrough.inodes, passthrough.store, settings.entry_timeout)
        for view_class in (SearchView, TagsView, SimilarView, PlacesView)
        if (view_class is not SimilarView or settings.image_features)
        and (view_class is not PlacesView or settings.facet_place != "off")
    ]
    reports = root_reports(settings, request.sources, request.mountpoint, engine, recent)
    descriptions = StoredDescriptions(catalog.reads, trio.CapacityLimiter(4))
    operations = SemfsOperations(settings, passthrough, ViewRegistry(views), reports, descriptions)
    try:
        pyfuse3.init(operations, request.mountpoint, _fuse_options(request))
    except RuntimeError as error:
        catalog.close()
        lock.close()
        raise QuietError(f"cannot mount at {request.mountpoint}: {error}") from error
    log.info("mounted %s at %s (pid %d)", settings.store, request.mountpoint, os.getpid())
    notify("READY=1", f"STATUS=mounted {settings.store} at {request.mountpoint}")
    engine.start_loading()
    ingest_thread = threading.Thread(target=ingest.run, name="semfs-ingest", daemon=True)
    try:
        trio.run(_main_loop, tracker, views, notifier, ingest_thread, engine.foreground)
    finally:
        passthrough.close_all()
        pyfuse3.close(unmount=True)
        ingest.stop()
        ingest_thread.join(timeout=STOP_TIMEOUT)  # finishes its batch: nothing half-written
        engine.close(timeout=STOP_TIMEOUT)
        ingest_store.close()
        catalog.close()
        lock.close()
        heap.stop_freezing()
        log.info("unmounted %s", request.mountpoint)


def limit_blas_threads() -> Any:
    """One thread for numpy's BLAS (OpenBLAS). Its second thread spins while it waits,
    and the daemon's threads (searches, ingest, the models' own pools) already share
    the cores: an exact scan of 79,000 caption vectors took 24.0 ms of wall time and
    15.9 of CPU with two threads, 16.9 and 8.8 with one (load 6, 2026-12-07)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")  # restore_original_limits() undoes it


def tune_malloc(arenas: int | None = None, mmap_threshold: int = 128 * 1024) -> None:
    """Keep memory glibc has freed from staying resident. Before any thread starts.

    Each time a large block is freed glibc raises its mmap threshold, so the models'
    activations (megabytes a layer) soon come from the heap and stay there:
    EfficientNet-Lite0 kept 60-70 MB more after 30 batches (measured). A fixed threshold
    turns that off: blocks above it are mapped and go back to the kernel when freed.
    The fresh pages cost time at small batches: 9.5 -> 11.5 ms an image in batches of 1
    or 2, none measurable in ingest's default batches of 8 (12 ms an image either way).
    `arenas` caps the arenas, of which glibc gives each allocating thread its own (up to
    8 per core), each keeping what it freed."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc: nothing to tune
    libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold)
    if arenas is not None:
        libc.mallopt(M_ARENA_MAX, arenas)


# mallopt's parameter numbers, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


class TrioNotifier:
    """Tells the views, on the trio thread, that results may have changed; callable
    from any thread."""

    def __init__(self) -> None:
        self._token: trio.lowlevel.TrioToken | None = None
        self._views: list[TreeView] = []

    def attach(self, views: list[TreeView]) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._views = views

    def notify(self) -> None:
        token = self._token
        if token is None:
            return
        for view in self._views:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(view.index_changed)


async def _main_loop(
    tracker: ChangeTracker,
    views: list[TreeView],
    notifier: TrioNotifier,
    ingest_thread: threading.Thread,
    foreground: Foreground,
) -> None:
    async with trio.open_nursery() as nursery:
        notifier.attach(views)
        ingest_thread.start()
        nursery.start_soon(tracker.run)
        watchers = [trio.CancelScope() for _ in views]
        for watcher, view in zip(watchers, views, strict=True):
            nursery.start_soon(_run_in_scope, watcher, view.watch)
        signals, tidying = trio.CancelScope(), trio.CancelScope()
        nursery.start_soon(_terminate_on_signal, signals)
        nursery.start_soon(_run_in_scope, tidying, partial(tidy_heap, foreground))
        try:
            await pyfuse3.main()
        finally:
            signals.cancel()
            tidying.cancel()
            for watcher in watchers:
                watcher.cancel()
            tracker.close()  # the tracker applies what is pending, then ends


async def _run_in_scope(scope: trio.CancelScope, task: Callable[[], Awaitable[None]]) -> None:
    with scope:
        await task()


async def _terminate_on_signal(scope: trio.CancelScope) -> None:
    with scope, trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as sigs:
        async for signum in sigs:
            log.info("signal %d: unmounting", signum)
            notify("STOPPING=1")
            pyfuse3.terminate()
            return


# --- the daemon -------------------------------------------------------------------------


def _start_daemon(request: MountRequest) -> None:
    settings = request.settings
    settings.make_state_dir()
    options = MountOptions(request.overrides, request.read_only, request.debug, request.nonempty)
    command = [sys.executable, "-m", "semfs", "mount", "--foreground", "--daemon-child"]
    command += ["-o", format_mount_options(options), str(settings.store), request.mountpoint]
    with open(settings.log_path, "ab") as log_file:
        log_start = log_file.tell()
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,
        )
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        entry = find_mount(request.mountpoint)
        if entry is not None and entry.fstype == FSTYPE:
            print(f"mounted {settings.store} at {request.mountpoint} (pid {child.pid}, "
                  f"log {settings.log_path})")  # fmt: skip
            return
        if child.poll() is not None:
            raise QuietError(f"mount failed:\n{_log_since(settings.log_path, log_start)}")
        time.sleep(0.05)
    child.terminate()
    raise QuietError(f"mount did not appear within {READY_TIMEOUT:.0f} s; see {settings.log_path}")


def _log_since(path: Path, offset: int) -> str:
    with open(path, "rb") as file:
        if os.fstat(file.fileno()).st_size >= offset:  # else rotated meanwhile: all of it
            file.seek(offset)
        return file.read().decode(errors="replace").strip()


def unmount(mountpoint: str, lazy: bool = False) -> None:
    """Unmount and wait for the daemon to finish writing the catalog."""
    entry = find_mount(mountpoint)
    if entry is None:
        raise QuietError(f"{mountpoint} is not mounted")
    if entry.fstype != FSTYPE:
        raise QuietError(f"{mountpoint} is a {entry.fstype} mount, not semfs")
    holder = None
    with contextlib.suppress(QuietError):  # the store went away; unmounting still works
        holder = read_lock_holder(Settings.load(entry.source))
    fuse_unmount(mountpoint, lazy=lazy)
    if holder is not None and holder.pid > 0:
        _wait_for_exit(holder.pid, STOP_TIMEOUT)


def _finishing(holder: LockHolder) -> bool:
    """The holder's mount is gone, but the daemon still runs (it is shutting down)."""
    entry = find_mount(holder.mountpoint)
    return entry is None or entry.fstype != FSTYPE


def _wait_for_release(settings: Settings, timeout: float) -> LockHolder | None:
    """The lock's holder once it is free (None), or still there after `timeout`."""
    deadline = time.monotonic() + timeout
    while (holder := read_lock_holder(settings)) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    return holder


def _wait_for_exit(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _is_running(pid):
            return
        time.sleep(0.05)
    raise QuietError(f"unmounted, but the daemon (pid {pid}) is still finishing; see its log")


def _is_running(pid: int) -> bool:
    """Alive and not a zombie (a zombie has finished; only its parent has not reaped it)."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rpartition(")")[2].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False
