"""Bring the catalog in line with what the store holds, e.g. after changes made unmounted.

New or changed images are hashed and enqueued; images that vanished are dropped; an
image that vanished from one path and appeared at another with the same content hash is
a move: its record (and so everything derived from it later) follows it, unqueued.

The scan compares one directory at a time, so memory grows with the largest directory
and the number of changes, not with the collection. It leaves out the trash folders in
the store's root (store/trash.py): what is there was deleted. Blocking: run it in a
worker thread.
"""

from __future__ import annotations

import logging
import os
import stat
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from semfs.catalog.database import Catalog, FileRecord, join_path
from semfs.config import STATE_DIR_NAME, Settings
from semfs.store.backing import BackingStore, iterate_directory
from semfs.store.trash import is_trash_folder

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    unchanged: int = 0
    added: int = 0
    changed: int = 0
    moved: int = 0
    removed: int = 0
    errors: list[tuple[bytes, str]] = field(default_factory=list)
    interrupted: bool = False  # stopped early: nothing was removed, the rest waits

    def summary(self) -> str:
        return (
            f"{self.added} added, {self.changed} changed, {self.moved} moved, "
            f"{self.removed} removed, {self.unchanged} unchanged, {len(self.errors)} unreadable"
        )


@dataclass
class Differences:
    """How the catalog differs from the store (`semfs check` reports these)."""

    fresh: list[tuple[bytes, os.stat_result]] = field(default_factory=list)  # not catalogued
    changed: list[tuple[bytes, os.stat_result]] = field(default_factory=list)  # size/mtime
    gone: list[FileRecord] = field(default_factory=list)  # catalogued, not in the store


class _Interrupted(Exception):
    pass


def reconcile(
    settings: Settings,
    catalog: Catalog,
    store: BackingStore,
    should_stop: Callable[[], bool] = lambda: False,
) -> ReconcileReport:
    """Scan the store and update the catalog; `should_stop` is polled between steps."""
    report = ReconcileReport()
    try:
        _reconcile(settings, catalog, store, report, should_stop)
    except _Interrupted:
        report.interrupted = True
    return report


def _reconcile(
    settings: Settings,
    catalog: Catalog,
    store: BackingStore,
    report: ReconcileReport,
    should_stop: Callable[[], bool],
) -> None:
    scan = find_differences(settings, catalog, store, report, should_stop)
    gone_by_hash: dict[str, list[FileRecord]] = defaultdict(list)
    for record in scan.gone:
        if record.content_hash is not None:
            gone_by_hash[record.content_hash].append(record)
    moved_ids: set[int] = set()

    for path, info in scan.changed:
        _check(should_stop)
        digest = _hash_or_report(store, path, report)
        if digest is not None:
            catalog.files.upsert(path, info.st_size, info.st_mtime_ns, digest)
            report.changed += 1
    for path, info in scan.fresh:
        _check(should_stop)
        digest = _hash_or_report(store, path, report)
        if digest is None:
            continue
        if gone_by_hash.get(digest):
            record = gone_by_hash[digest].pop()
            catalog.files.move(record.path, path, info.st_size, info.st_mtime_ns)
            moved_ids.add(record.id)
            report.moved += 1
        else:
            catalog.files.upsert(path, info.st_size, info.st_mtime_ns, digest)
            report.added += 1
    vanished = [record.id for record in scan.gone if record.id not in moved_ids]
    catalog.files.remove_ids(vanished)
    report.removed = len(vanished)


def _check(should_stop: Callable[[], bool]) -> None:
    if should_stop():
        raise _Interrupted


def find_differences(
    settings: Settings,
    catalog: Catalog,
    store: BackingStore,
    report: ReconcileReport,
    should_stop: Callable[[], bool] = lambda: False,
) -> Differences:
    """Compare without changing anything; counts unchanged files and unreadable
    directories into `report`."""
    scan = Differences()
    visited: set[bytes] = set()
    unreadable: list[bytes] = []
    for directory, images in _walk_images(settings, store, report, unreadable):
        _check(should_stop)
        visited.add(directory)
        known = catalog.files.files_in_dir(directory)
        for name, info in images.items():
            record = known.pop(name, None)
            path = join_path(directory, name)
            if record is None:
                scan.fresh.append((path, info))
            elif (record.size, record.mtime_ns) != (info.st_size, info.st_mtime_ns):
                scan.changed.append((path, info))
            else:
                report.unchanged += 1
        scan.gone.extend(known.values())
    for directory in catalog.files.directories() - visited:
        # A directory we could not read may still hold its files: keep their records.
        if not any(_is_within(directory, bad) for bad in unreadable):
            scan.gone.extend(catalog.files.files_in_dir(directory).values())
    return scan


def catalog_tree(
    settings: Settings, catalog: Catalog, store: BackingStore, top: bytes
) -> ReconcileReport:
    """Record the image at `top`, or every image below folder `top`: what was restored
    from the trash, which the catalog forgot when it went there. Blocking."""
    report = ReconcileReport()
    try:
        info = store.lstat(top)
    except FileNotFoundError:
        return report  # gone again: the change that moved it follows
    if stat.S_ISDIR(info.st_mode):
        found: Iterator[tuple[bytes, os.stat_result]] = (
            (join_path(directory, name), image)
            for directory, images in _walk_images(settings, store, report, [], top)
            for name, image in images.items()
        )
    else:
        found = iter([(top, info)] if stat.S_ISREG(info.st_mode) else [])
    for path, image in found:
        digest = _hash_or_report(store, path, report) if settings.is_image_name(path) else None
        if digest is not None:
            catalog.files.upsert(path, image.st_size, image.st_mtime_ns, digest)
            report.added += 1
    return report


def _walk_images(
    settings: Settings,
    store: BackingStore,
    report: ReconcileReport,
    unreadable: list[bytes],
    top: bytes = b"",
) -> Iterator[tuple[bytes, dict[bytes, os.stat_result]]]:
    """Yield (store-relative dir, {name: stat}) for `top` and every directory below it,
    images only; never the state directory or the trash folders of the store's root.

    Symlinks are not followed: a link to an image is not an image stored here.
    """
    state_dir = os.fsencode(STATE_DIR_NAME)
    pending = [top]
    while pending:
        directory = pending.pop()
        images: dict[bytes, os.stat_result] = {}
        try:
            fd = store.open_directory(directory)
            try:
                for name, info in iterate_directory(fd, state_dir if not directory else None):
                    if stat.S_ISDIR(info.st_mode):
                        if directory or not is_trash_folder(name):
                            pending.append(join_path(directory, name))
                    elif stat.S_ISREG(info.st_mode) and settings.is_image_name(name):
                        images[name] = info
            finally:
                os.close(fd)
        except OSError as error:
            log.warning("cannot scan %r: %s", directory, error)
            report.errors.append((directory, str(error)))
            unreadable.append(directory)
            continue
        yield directory, images


def _hash_or_report(store: BackingStore, path: bytes, report: ReconcileReport) -> str | None:
    try:
        return store.content_hash(path)
    except OSError as error:
        log.warning("cannot hash %r: %s", path, error)
        report.errors.append((path, str(error)))
        return None


def _is_within(path: bytes, directory: bytes) -> bool:
    return directory == b"" or path == directory or path.startswith(directory + b"/")
