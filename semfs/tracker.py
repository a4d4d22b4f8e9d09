"""Keeps the catalog in step with changes made through the mount.

The filesystem handlers report changes with non-blocking calls (`written`, `removed`,
`renamed`, `exchanged`); one background task applies them in order, in a worker thread,
after the mount-time reconcile scan. Nothing here is needed for durability: a change
that is lost in a crash is found again by the next reconcile.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import trio

from semfs.catalog import Catalog
from semfs.config import Settings
from semfs.fs.backing import BackingStore
from semfs.reconcile import reconcile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Written:
    path: bytes  # where the file was when reported
    inode: int | None = None  # lets the tracker find where it is when applied
    now_at: tuple[bytes, ...] = ()  # its image names when applied (hard links: several)


@dataclass(frozen=True)
class Removed:
    path: bytes
    is_dir: bool


@dataclass(frozen=True)
class Renamed:
    old: bytes
    new: bytes
    is_dir: bool
    inode: int | None = None
    now_at: bytes | None = None  # where the moved file is when the change is applied


@dataclass(frozen=True)
class Exchanged:
    first: bytes
    second: bytes


Change = Written | Removed | Renamed | Exchanged

# A path no real file can have (NUL), used to swap two subtrees in the catalog.
_SWAP_PREFIX = b"\0swap"

PathOfInode = Callable[[int], bytes | None]
PathsOfInode = Callable[[int], list[bytes]]


class ChangeTracker:
    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        self._settings = settings
        self._catalog = catalog
        self._store = BackingStore(os.fsencode(settings.store))
        # Unbounded: reporting a change must never block a filesystem handler.
        self._send, self._receive = trio.open_memory_channel[Change](math.inf)
        self._stopping = threading.Event()
        self.reconciled = trio.Event()
        # Set by the filesystem: an inode's path now. Changes are applied after later
        # ones may have moved the file (or its directory) on; the catalog follows the
        # events in order and never trusts a stale path to still exist.
        self.path_of_inode: PathOfInode = lambda inode: None
        self.paths_of_inode: PathsOfInode = lambda inode: []

    # --- called by the filesystem handlers (trio thread, never blocks) -------------

    def written(self, path: bytes, inode: int | None = None) -> None:
        # Not filtered by name here: through a hard link, a write to "notes" can change
        # "photo.jpg". `_locate` keeps the image names.
        self._send.send_nowait(Written(path, inode))

    def removed(self, path: bytes, is_dir: bool) -> None:
        self._send.send_nowait(Removed(path, is_dir))

    def renamed(self, old: bytes, new: bytes, is_dir: bool, inode: int | None = None) -> None:
        self._send.send_nowait(Renamed(old, new, is_dir, inode))

    def exchanged(self, first: bytes, second: bytes) -> None:
        self._send.send_nowait(Exchanged(first, second))

    # --- the background task --------------------------------------------------------

    async def run(self) -> None:
        """Reconcile the store, then apply reported changes until `close`; drains first."""
        try:
            await trio.to_thread.run_sync(self._reconcile)
        finally:
            self.reconciled.set()
        try:
            async with self._receive:
                async for change in self._receive:
                    located = self._locate(change)
                    if located is not None:
                        await trio.to_thread.run_sync(self._apply_logged, located)
        finally:
            self._store.close()

    def close(self) -> None:
        """Stop accepting changes; `run` returns once those already reported are applied."""
        self._stopping.set()
        self._send.close()

    def _reconcile(self) -> None:
        started = time.time()
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

    def _locate(self, change: Change) -> Change | None:
        """Fill in where the file is now (on the trio thread, which owns the inodes);
        None when a write touched no image at all."""
        match change:
            case Written(path, inode):
                paths = (self.paths_of_inode(inode) if inode is not None else []) or [path]
                images = tuple(p for p in paths if self._settings.is_image_name(p))
                return dataclasses.replace(change, now_at=images) if images else None
            case Renamed(is_dir=False, inode=inode) if inode is not None:
                return dataclasses.replace(change, now_at=self.path_of_inode(inode))
        return change

    def _apply_logged(self, change: Change) -> None:
        try:
            self._apply(change)
        except Exception:
            # The next reconcile repairs whatever this missed; the mount must go on.
            log.exception("could not record %s in the catalog", change)

    def _apply(self, change: Change) -> None:
        catalog = self._catalog
        match change:
            case Written(now_at=paths):
                for path in paths:
                    self._record_file(path)
            case Removed(path, is_dir=True):
                catalog.remove_tree(path)
            case Removed(path, is_dir=False):
                catalog.remove(path)
            case Renamed(old, new, is_dir=True):
                catalog.move_tree(old, new)
            case Renamed(old, new, is_dir=False, now_at=now_at):
                if not self._settings.is_image_name(new):
                    catalog.remove(old)
                elif not catalog.move(old, new):
                    self._record_file(now_at or new)  # e.g. "x.tmp" renamed to "x.jpg"
            case Exchanged(first, second):
                # Either side may be a directory or a file: swap whatever lies below
                # each, then look at the two paths themselves afresh.
                swap = _SWAP_PREFIX + first
                catalog.move_tree(first, swap)
                catalog.move_tree(second, first)
                catalog.move_tree(swap, second)
                self._record_file(first)
                self._record_file(second)

    def _stat_image(self, path: bytes) -> os.stat_result | None:
        """The file's stat if `path` is now a regular file with an image name."""
        if not self._settings.is_image_name(path):
            return None
        try:
            info = self._store.lstat(path)
        except FileNotFoundError:
            return None
        return info if stat.S_ISREG(info.st_mode) else None

    def _record_file(self, path: bytes) -> None:
        info = self._stat_image(path)
        if info is None:
            self._catalog.remove(path)
            return
        try:
            digest = self._store.content_hash(path)
        except FileNotFoundError:
            self._catalog.remove(path)
            return
        if self._catalog.upsert(path, info.st_size, info.st_mtime_ns, digest):
            log.debug("enqueued %r", path)
