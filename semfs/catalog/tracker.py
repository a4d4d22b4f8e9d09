"""Keeps the catalog in step with changes made through the mount.

The filesystem handlers report changes with non-blocking calls (`written`, `removed`,
`renamed`, `exchanged`); one background task applies them in order, in a worker thread,
after the mount-time reconcile scan.

The catalog *replays* the changes: each is applied with the paths it had when it
happened, and the changes after it move it on, just as they moved the files. Nothing is
looked up by path at apply time, when later changes may have moved or removed it: a
file's content is read through a read-only descriptor opened when the change was
reported (`Content`), which follows the file whatever happens to its names.

The trash folders of the store's root (store/trash.py) are not catalogued: a file moved
there leaves the catalog as if deleted, and comes back, as new, when it is restored.

Nothing here is needed for durability: a change lost in a crash is found again by the
next reconcile, and so is a write through a hard link the mount has never seen. A change
that could not be recorded (the catalog refused the write: a full disk) makes the
tracker rescan the store every few seconds until a rescan succeeds.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import trio

from semfs.catalog.database import Catalog
from semfs.catalog.reconcile import catalog_tree, reconcile
from semfs.config import Settings
from semfs.store.backing import BackingStore
from semfs.store.hashing import descriptor_hash
from semfs.store.trash import in_trash

log = logging.getLogger(__name__)

# Descriptors held by changes waiting to be applied; past this, changes carry none and
# their content is read by path when applied (a later reconcile corrects any miss).
MAX_HELD_DESCRIPTORS = 1024
APPLY_BATCH = 256  # most changes applied per trip to a worker thread
LULL = 0.1  # seconds without a new change before the waiting ones are applied
CATCH_UP_AFTER = 5.0  # seconds between rescans when changes could not be recorded

Opener = Callable[[], int]  # opens a read-only descriptor of a file's content


@dataclass(frozen=True)
class Written:
    paths: tuple[bytes, ...]  # the file's image names when written (hard links: several)
    fd: int | None  # its content; owned by the change


@dataclass(frozen=True)
class Removed:
    path: bytes
    is_dir: bool


@dataclass(frozen=True)
class Renamed:
    old: bytes
    new: bytes
    is_dir: bool
    fd: int | None = None  # content, when a file got an image name


@dataclass(frozen=True)
class Exchanged:
    first: bytes
    second: bytes
    first_fd: int | None = None  # content now at `first`, if a file with an image name
    second_fd: int | None = None


@dataclass(frozen=True)
class Recaption:
    path: bytes  # its user caption (xattr) changed: describe it again


Change = Written | Removed | Renamed | Exchanged | Recaption


class ChangeTracker:
    def __init__(
        self, settings: Settings, catalog: Catalog, on_applied: Callable[[], None] = lambda: None
    ) -> None:
        self._settings = settings
        self._catalog = catalog
        # Called (in a worker thread) after each change and the reconcile: the ingest
        # worker may have work, and searches may see other results.
        self._on_applied = on_applied
        self._store = BackingStore(os.fsencode(settings.store))
        # Unbounded: reporting a change must never block a filesystem handler.
        self._send, self._receive = trio.open_memory_channel[Change](math.inf)
        self._stopping = threading.Event()
        self._held = 0  # GUARDED_BY(_held_lock): descriptors in queued changes
        self._held_lock = threading.Lock()
        self.reconciled = trio.Event()
        self._missed = threading.Event()  # a change could not be recorded: rescan
        self._last_catch_up = 0.0  # time.monotonic() of the last rescan for missed changes

    # --- called by the filesystem handlers (trio thread, never blocks) -------------

    def written(self, paths: Sequence[bytes], content: Opener) -> None:
        """A file's content changed; `paths` are all its names now."""
        images = tuple(path for path in paths if self._catalogued(path))
        if images:
            self._send.send_nowait(Written(images, self._hold(content)))

    def removed(self, path: bytes, is_dir: bool) -> None:
        self._send.send_nowait(Removed(path, is_dir))

    def renamed(self, old: bytes, new: bytes, is_dir: bool, content: Opener | None) -> None:
        """`content` opens the moved file (None for a directory or a non-regular file)."""
        self._send.send_nowait(Renamed(old, new, is_dir, self._hold_image(new, content)))

    def exchanged(
        self,
        first: bytes,
        second: bytes,
        first_content: Opener | None,
        second_content: Opener | None,
    ) -> None:
        """`first` and `second` swapped; the openers open what is at each now."""
        first_fd = self._hold_image(first, first_content)
        second_fd = self._hold_image(second, second_content)
        self._send.send_nowait(Exchanged(first, second, first_fd, second_fd))

    def caption_changed(self, paths: Sequence[bytes]) -> None:
        for path in paths:
            if self._catalogued(path):
                self._send.send_nowait(Recaption(path))

    def _catalogued(self, path: bytes) -> bool:
        """Whether a file at `path` belongs in the catalog: an image name, not in a trash."""
        return self._settings.is_image_name(path) and not in_trash(path)

    def _hold_image(self, path: bytes, content: Opener | None) -> int | None:
        """The content's descriptor, if there is content and `path` is catalogued."""
        if content is None or not self._catalogued(path):
            return None
        return self._hold(content)

    def _hold(self, content: Opener) -> int | None:
        with self._held_lock:
            if self._held >= MAX_HELD_DESCRIPTORS:
                return None
            self._held += 1
        try:
            return content()
        except OSError as error:
            log.debug("cannot open content for the catalog: %s", error)
            self._release_count()
            return None

    def _release_count(self) -> None:
        with self._held_lock:
            self._held -= 1

    # --- the background task --------------------------------------------------------

    async def run(self) -> None:
        """Reconcile the store, then apply reported changes until `close`; drains first."""
        try:
            await trio.to_thread.run_sync(self._reconcile)
        finally:
            self.reconciled.set()
            self._on_applied()
        try:
            async with self._receive:
                while True:
                    try:
                        change = await self._next_change()
                    except trio.EndOfChannel:
                        break
                    if change is not None:
                        batch = [change, *await self._until_lull(APPLY_BATCH - 1)]
                        await trio.to_thread.run_sync(self._apply_batch, batch)
                    if self._catch_up_due():
                        await trio.to_thread.run_sync(self._catch_up)
        finally:
            self._store.close()

    async def _next_change(self) -> Change | None:
        """The next change reported; None after a while if a rescan is owed."""
        if not self._missed.is_set():
            return await self._receive.receive()
        with trio.move_on_after(CATCH_UP_AFTER):
            return await self._receive.receive()
        return None

    def _catch_up_due(self) -> bool:
        return (
            self._missed.is_set()
            and not self._stopping.is_set()
            and time.monotonic() - self._last_catch_up >= CATCH_UP_AFTER
        )

    async def _until_lull(self, most: int) -> list[Change]:
        """The changes reported until none came for LULL seconds, up to `most`.

        Hashing and recording a file while the next ones are being copied in would
        compete with serving the copy for the CPUs and the GIL: `cp -r` is served first.
        """
        found: list[Change] = []
        while len(found) < most:
            with trio.move_on_after(LULL) as waited:
                try:
                    found.append(await self._receive.receive())
                except trio.EndOfChannel:
                    break
            if waited.cancelled_caught:
                break
        return found

    def close(self) -> None:
        """Stop accepting changes; `run` returns once those already reported are applied."""
        self._stopping.set()
        self._send.close()

    def _reconcile(self) -> None:
        started = time.time()
        try:
            report = reconcile(
                self._settings, self._catalog, self._store, should_stop=self._stopping.is_set
            )
            if report.interrupted:
                log.info("reconcile interrupted by unmount: %s", report.summary())
                return
            log.info("reconcile finished in %.1f s: %s", time.time() - started, report.summary())
            self._catalog.set_meta(
                "last_reconcile",
                json.dumps({"finished": time.time(), "summary": report.summary()}),
            )
        except sqlite3.OperationalError as error:  # e.g. the disk is full
            self._missed.set()
            log.warning("reconcile could not write the catalog: %s; retrying in %.0f s",
                        error, CATCH_UP_AFTER)  # fmt: skip

    # --- applying (worker thread) -------------------------------------------------------

    def _apply_batch(self, changes: list[Change]) -> None:
        """Apply in order; one thread hop and one "applied" signal for all of them (`cp -r`
        of many images reports them faster than they are hashed)."""
        for change in changes:
            self._apply_logged(change)
        try:
            self._on_applied()
        except Exception:  # a wake-up that failed must not stop the tracker
            log.exception("could not signal applied changes")

    def _catch_up(self) -> None:
        """Changes were missed (the catalog refused writes): rescan the store, as at
        mount time, once the catalog takes writes again."""
        self._last_catch_up = time.monotonic()
        self._missed.clear()
        self._reconcile()  # sets _missed again if it fails too
        self._on_applied()

    def _apply_logged(self, change: Change) -> None:
        try:
            self._apply(change)
        except sqlite3.OperationalError as error:  # e.g. the disk is full
            self._missed.set()
            log.warning("could not record %s in the catalog: %s; a rescan will catch up",
                        change, error)  # fmt: skip
        except Exception:
            # A rescan repairs whatever this missed; the mount must go on.
            self._missed.set()
            log.exception("could not record %s in the catalog", change)
        finally:
            for fd in _descriptors(change):
                os.close(fd)
                self._release_count()

    def _apply(self, change: Change) -> None:
        catalog = self._catalog
        match change:
            case Written(paths, fd):
                content = self._content(fd, paths[0])
                for path in paths:
                    self._record(path, content)
            case Removed(path, is_dir=True):
                catalog.files.remove_tree(path)
            case Removed(path, is_dir=False):
                catalog.files.remove(path)
            case Renamed(old, new, is_dir=True) if in_trash(new):
                catalog.files.remove_tree(old)  # deleted to the trash
            case Renamed(old, new, is_dir=True) if in_trash(old):
                catalog_tree(self._settings, catalog, self._store, new)  # restored
            case Renamed(old, new, is_dir=True):
                catalog.files.rename_tree(old, new)
            case Renamed(old, new, is_dir=False, fd=fd):
                if not self._catalogued(new):
                    catalog.files.remove(old)
                elif not catalog.files.move(old, new):
                    self._record(new, self._content(fd, new))  # "x.tmp" renamed to "x.jpg"
            case Recaption(path):
                catalog.queue.requeue(path)
            case Exchanged(first, second, first_fd, second_fd):
                images = {
                    path: fd
                    for path, fd in ((first, first_fd), (second, second_fd))
                    if self._catalogued(path) and fd is not None
                }
                stale = [path for path in (first, second) if path not in images]
                catalog.files.swap(first, second, stale)
                for path, fd in images.items():
                    self._record(path, self._content(fd, path))
                if in_trash(first) != in_trash(second):  # one went to the trash, one came out
                    kept, trashed = (first, second) if in_trash(second) else (second, first)
                    catalog.files.remove_tree(trashed)
                    if kept not in images:
                        catalog_tree(self._settings, catalog, self._store, kept)

    def _content(self, fd: int | None, path: bytes) -> tuple[os.stat_result, str] | None:
        """(stat, hash) of a regular file behind `fd`, or lacking one, found at `path`."""
        try:
            if fd is not None:
                info = os.fstat(fd)
                return (info, descriptor_hash(fd)) if stat.S_ISREG(info.st_mode) else None
            info = self._store.lstat(path)
            if not stat.S_ISREG(info.st_mode):
                return None
            return info, self._store.content_hash(path)
        except FileNotFoundError:
            return None  # gone already: the change that removed it follows

    def _record(self, path: bytes, content: tuple[os.stat_result, str] | None) -> None:
        if content is None:
            return
        info, digest = content
        if self._catalog.files.upsert(path, info.st_size, info.st_mtime_ns, digest):
            log.debug("enqueued %r", path)


def _descriptors(change: Change) -> list[int]:
    match change:
        case Written(fd=fd) | Renamed(fd=fd):
            return [fd] if fd is not None else []
        case Exchanged(first_fd=first, second_fd=second):
            return [fd for fd in (first, second) if fd is not None]
    return []
