"""Real files: the store seen through the mount, read and write.

Typed helpers over the backing directory that the FUSE adapter (`operations.py`) calls.
They raise `OSError` with the right errno; the adapter turns that into `FUSEError`.
File data moves in worker threads (`trio.to_thread`), so a slow disk never stalls the
trio thread that serves every other request; metadata calls are single syscalls served
from the kernel's caches and stay on the trio thread.

Every change that could alter the catalog is reported to the `ChangeTracker`.
"""

from __future__ import annotations

import errno
import itertools
import os
import stat
from dataclasses import dataclass
from typing import Protocol

import trio

from semfs.config import STATE_DIR_NAME, Settings
from semfs.fs.inodes import ROOT_INODE, InodeTable
from semfs.fs.syscalls import RENAME_EXCHANGE, renameat2
from semfs.tracker import ChangeTracker

_HIDDEN_ROOT_NAME = os.fsencode(STATE_DIR_NAME)
# O_DIRECT needs aligned buffers the kernel does not promise us; FUSE's own page cache
# settings decide caching. Creation flags are handled by `create`, truncation by setattr.
_STRIPPED_OPEN_FLAGS = os.O_DIRECT | os.O_CREAT | os.O_EXCL | os.O_NOCTTY


class Caller(Protocol):
    """Who asked: pyfuse3's RequestContext has these."""

    @property
    def uid(self) -> int: ...
    @property
    def gid(self) -> int: ...
    @property
    def umask(self) -> int: ...


@dataclass
class AttributeChanges:
    """What a setattr asks for; None means leave as it is."""

    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    size: int | None = None
    atime_ns: int | None = None
    mtime_ns: int | None = None


@dataclass
class OpenFile:
    fd: int
    inode: int
    modified: bool = False


@dataclass
class DirListing:
    inode: int
    entries: list[tuple[bytes, os.stat_result]] | None = None  # snapshot; offsets index it


class Passthrough:
    def __init__(self, settings: Settings, tracker: ChangeTracker) -> None:
        self._root = os.fsencode(settings.store)
        info = os.lstat(self._root)
        self.inodes = InodeTable((info.st_dev, info.st_ino))
        self._tracker = tracker
        self._io_limiter = trio.CapacityLimiter(settings.io_threads)
        self._files: dict[int, OpenFile] = {}  # by fh (= the backing fd)
        self._dirs: dict[int, DirListing] = {}
        self._dir_handles = itertools.count(1)

    # --- names ----------------------------------------------------------------------

    def backing_path(self, relative: bytes) -> bytes:
        return self._root + b"/" + relative if relative else self._root

    def _child(self, parent: int, name: bytes) -> bytes:
        """The backing path for a new or existing name, refusing the hidden state dir."""
        if parent == ROOT_INODE and name == _HIDDEN_ROOT_NAME:
            raise OSError(errno.EPERM, "reserved for semfs")
        return self.backing_path(self.inodes.child_path(parent, name))

    def _relative(self, parent: int, name: bytes) -> bytes:
        return self.inodes.child_path(parent, name)

    def _entry(self, parent: int, name: bytes, info: os.stat_result) -> tuple[int, os.stat_result]:
        """Remember (parent, name) and count a kernel lookup on it."""
        inode = self.inodes.remember(parent, name, info)
        inode.lookups += 1
        return inode.number, info

    # --- lookup and attributes ------------------------------------------------------

    def lookup(self, parent: int, name: bytes) -> tuple[int, os.stat_result]:
        if parent == ROOT_INODE and name == _HIDDEN_ROOT_NAME:
            raise OSError(errno.ENOENT, "hidden")
        if name == b".":
            self.inodes.increment(parent)
            return parent, self.getattr(parent)
        if name == b"..":
            grandparent = self._parent_of(parent)
            self.inodes.increment(grandparent)
            return grandparent, self.getattr(grandparent)
        info = os.lstat(self._child(parent, name))
        return self._entry(parent, name, info)

    def _parent_of(self, number: int) -> int:
        links = self.inodes.get(number).links
        return next(reversed(links))[0] if links else ROOT_INODE

    def getattr(self, number: int) -> os.stat_result:
        try:
            return os.lstat(self.backing_path(self.inodes.path(number)))
        except FileNotFoundError:
            # Unlinked while open: the open descriptor still reaches it.
            for handle in self._files.values():
                if handle.inode == number:
                    return os.fstat(handle.fd)
            raise

    def setattr(self, number: int, changes: AttributeChanges, fh: int | None) -> os.stat_result:
        handle = self._files.get(fh) if fh is not None else None
        path = self.backing_path(self.inodes.path(number)) if handle is None else None
        if changes.size is not None:
            if handle is not None:
                os.ftruncate(handle.fd, changes.size)
                handle.modified = True
            else:
                assert path is not None
                os.truncate(path, changes.size)
                self._tracker.written(self.inodes.path(number))
        if changes.mode is not None:
            if handle is not None:
                os.fchmod(handle.fd, stat.S_IMODE(changes.mode))
            else:
                assert path is not None
                _chmod_no_follow(path, stat.S_IMODE(changes.mode))
        if changes.uid is not None or changes.gid is not None:
            uid = -1 if changes.uid is None else changes.uid
            gid = -1 if changes.gid is None else changes.gid
            if handle is not None:
                os.fchown(handle.fd, uid, gid)
            else:
                assert path is not None
                os.chown(path, uid, gid, follow_symlinks=False)
        if changes.atime_ns is not None or changes.mtime_ns is not None:
            current = self.getattr(number)
            times = (
                current.st_atime_ns if changes.atime_ns is None else changes.atime_ns,
                current.st_mtime_ns if changes.mtime_ns is None else changes.mtime_ns,
            )
            if handle is not None:
                os.utime(handle.fd, ns=times)
            else:
                assert path is not None
                os.utime(path, ns=times, follow_symlinks=False)
        return self.getattr(number)

    def readlink(self, number: int) -> bytes:
        return os.readlink(self.backing_path(self.inodes.path(number)))

    # --- creating and removing names ------------------------------------------------

    def _give_to_caller(self, path: bytes, parent: int, caller: Caller) -> os.stat_result:
        """New entries belong to whoever made them (the daemon runs as root)."""
        parent_info = os.lstat(self.backing_path(self.inodes.path(parent)))
        # In a set-group-ID directory, new entries take the directory's group.
        gid = parent_info.st_gid if parent_info.st_mode & stat.S_ISGID else caller.gid
        os.chown(path, caller.uid, gid, follow_symlinks=False)
        return os.lstat(path)

    def mkdir(
        self, parent: int, name: bytes, mode: int, caller: Caller
    ) -> tuple[int, os.stat_result]:
        path = self._child(parent, name)
        os.mkdir(path, stat.S_IMODE(mode) & ~caller.umask)
        return self._entry(parent, name, self._give_to_caller(path, parent, caller))

    def mknod(
        self, parent: int, name: bytes, mode: int, rdev: int, caller: Caller
    ) -> tuple[int, os.stat_result]:
        path = self._child(parent, name)
        os.mknod(path, stat.S_IFMT(mode) | (stat.S_IMODE(mode) & ~caller.umask), rdev)
        return self._entry(parent, name, self._give_to_caller(path, parent, caller))

    def symlink(
        self, parent: int, name: bytes, target: bytes, caller: Caller
    ) -> tuple[int, os.stat_result]:
        path = self._child(parent, name)
        os.symlink(target, path)
        return self._entry(parent, name, self._give_to_caller(path, parent, caller))

    def link(self, number: int, new_parent: int, new_name: bytes) -> tuple[int, os.stat_result]:
        source = self.backing_path(self.inodes.path(number))
        target = self._child(new_parent, new_name)
        os.link(source, target, follow_symlinks=False)
        self._tracker.written(self._relative(new_parent, new_name))
        return self._entry(new_parent, new_name, os.lstat(target))

    def unlink(self, parent: int, name: bytes) -> None:
        path = self._child(parent, name)
        info = os.lstat(path)
        os.unlink(path)
        self._tracker.removed(self._relative(parent, name), is_dir=False)
        self.inodes.unlinked(parent, name, was_last_link=info.st_nlink <= 1)

    def rmdir(self, parent: int, name: bytes) -> None:
        path = self._child(parent, name)
        os.rmdir(path)
        self._tracker.removed(self._relative(parent, name), is_dir=True)
        self.inodes.unlinked(parent, name, was_last_link=True)

    def rename(
        self, old_parent: int, old_name: bytes, new_parent: int, new_name: bytes, flags: int
    ) -> None:
        old_path = self._child(old_parent, old_name)
        new_path = self._child(new_parent, new_name)
        old_rel = self._relative(old_parent, old_name)
        new_rel = self._relative(new_parent, new_name)
        moved = os.lstat(old_path)
        try:
            replaced: os.stat_result | None = os.lstat(new_path)
        except FileNotFoundError:
            replaced = None
        renameat2(old_path, new_path, flags)
        is_dir = stat.S_ISDIR(moved.st_mode)
        if flags & RENAME_EXCHANGE:
            self.inodes.exchanged((old_parent, old_name), (new_parent, new_name))
            self._tracker.exchanged(old_rel, new_rel, is_dir)
            return
        replaced_last = replaced is not None and (
            stat.S_ISDIR(replaced.st_mode) or replaced.st_nlink <= 1
        )
        if replaced is not None and (replaced.st_dev, replaced.st_ino) == (
            moved.st_dev,
            moved.st_ino,
        ):
            return  # renaming a name onto a hard link of itself does nothing
        self.inodes.renamed((old_parent, old_name), (new_parent, new_name), replaced_last)
        self._tracker.renamed(old_rel, new_rel, is_dir)

    # --- file data -------------------------------------------------------------------

    def open(self, number: int, flags: int) -> int:
        path = self.backing_path(self.inodes.path(number))
        fd = os.open(path, flags & ~_STRIPPED_OPEN_FLAGS)
        return self._register_handle(fd, number)

    def create(
        self, parent: int, name: bytes, mode: int, flags: int, caller: Caller
    ) -> tuple[int, int, os.stat_result]:
        path = self._child(parent, name)
        fd = os.open(
            path,
            (flags & ~_STRIPPED_OPEN_FLAGS) | os.O_CREAT | os.O_EXCL,
            stat.S_IMODE(mode) & ~caller.umask,
        )
        try:
            info = self._give_to_caller(path, parent, caller)
        except OSError:
            os.close(fd)
            os.unlink(path)
            raise
        number, info = self._entry(parent, name, info)
        fh = self._register_handle(fd, number)
        self._files[fh].modified = True  # a new file is news, even if left empty
        return fh, number, info

    def _register_handle(self, fd: int, number: int) -> int:
        self._files[fd] = OpenFile(fd, number)
        self.inodes.opened(number)
        return fd

    def _handle(self, fh: int) -> OpenFile:
        try:
            return self._files[fh]
        except KeyError:
            raise OSError(errno.EBADF, "unknown file handle") from None

    async def read(self, fh: int, offset: int, size: int) -> bytes:
        fd = self._handle(fh).fd
        return await trio.to_thread.run_sync(os.pread, fd, size, offset, limiter=self._io_limiter)

    async def write(self, fh: int, offset: int, data: bytes) -> int:
        handle = self._handle(fh)
        handle.modified = True
        return await trio.to_thread.run_sync(
            _write_all, handle.fd, data, offset, limiter=self._io_limiter
        )

    async def fsync(self, fh: int, datasync: bool) -> None:
        sync = os.fdatasync if datasync else os.fsync
        await trio.to_thread.run_sync(sync, self._handle(fh).fd, limiter=self._io_limiter)

    def release(self, fh: int) -> None:
        handle = self._files.pop(fh, None)
        if handle is None:
            return
        try:
            os.close(handle.fd)
        finally:
            if handle.modified:
                self._report_written(handle.inode)
            self.inodes.closed(handle.inode)

    def _report_written(self, number: int) -> None:
        try:
            path = self.inodes.path(number)
        except OSError:
            return  # unlinked while open: nothing left to catalog
        self._tracker.written(path)

    # --- directories ------------------------------------------------------------------

    def opendir(self, number: int) -> int:
        self.inodes.get(number)
        fh = next(self._dir_handles)
        self._dirs[fh] = DirListing(number)
        return fh

    async def list_directory(self, fh: int, restart: bool) -> DirListing:
        """The handle's snapshot of its directory, taken anew when reading from the start."""
        listing = self._dirs.get(fh)
        if listing is None:
            raise OSError(errno.EBADF, "unknown directory handle")
        if listing.entries is None or restart:
            path = self.backing_path(self.inodes.path(listing.inode))
            hide_state = listing.inode == ROOT_INODE
            listing.entries = await trio.to_thread.run_sync(
                _list_directory, path, hide_state, limiter=self._io_limiter
            )
        return listing

    def remember_listed(self, parent: int, name: bytes, info: os.stat_result) -> int:
        """Inode number for an entry about to be returned by readdir (no lookup counted)."""
        return self.inodes.remember(parent, name, info).number

    def releasedir(self, fh: int) -> None:
        self._dirs.pop(fh, None)

    def statfs(self) -> os.statvfs_result:
        return os.statvfs(self._root)

    # --- extended attributes ------------------------------------------------------------

    def getxattr(self, number: int, name: bytes) -> bytes:
        return os.getxattr(self._path_of(number), name, follow_symlinks=False)

    def setxattr(self, number: int, name: bytes, value: bytes) -> None:
        os.setxattr(self._path_of(number), name, value, follow_symlinks=False)

    def listxattr(self, number: int) -> list[bytes]:
        names = os.listxattr(self._path_of(number), follow_symlinks=False)
        return [os.fsencode(name) for name in names]

    def removexattr(self, number: int, name: bytes) -> None:
        os.removexattr(self._path_of(number), name, follow_symlinks=False)

    def _path_of(self, number: int) -> bytes:
        return self.backing_path(self.inodes.path(number))

    def close_all(self) -> None:
        """Close every backing descriptor (at unmount)."""
        for fh in list(self._files):
            self.release(fh)
        self._dirs.clear()


def _chmod_no_follow(path: bytes, mode: int) -> None:
    """chmod without following a symlink; Linux cannot change a symlink's own mode."""
    if stat.S_ISLNK(os.lstat(path).st_mode):
        raise OSError(errno.EOPNOTSUPP, "cannot change the mode of a symlink", path)
    os.chmod(path, mode)


def _write_all(fd: int, data: bytes, offset: int) -> int:
    """FUSE requires every byte written (short writes only with direct_io)."""
    view = memoryview(data)
    written = 0
    while written < len(view):
        written += os.pwrite(fd, view[written:], offset + written)
    return written


def _list_directory(path: bytes, hide_state: bool) -> list[tuple[bytes, os.stat_result]]:
    entries = []
    with os.scandir(path) as scan:
        for entry in scan:
            if hide_state and entry.name == _HIDDEN_ROOT_NAME:
                continue
            try:
                entries.append((entry.name, entry.stat(follow_symlinks=False)))
            except FileNotFoundError:
                continue  # removed while we listed
    return entries
