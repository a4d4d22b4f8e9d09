"""Real files: the store seen through the mount, read and write.

Typed helpers that the FUSE adapter (`operations.py`) calls: they keep the inode table,
the open handles and the change reports, and leave the system calls to `BackingStore`.
They raise `OSError` with the right errno; the adapter turns that into `FUSEError`.
File data and directory listings move in worker threads (`trio.to_thread`), so a slow
disk never stalls the trio thread that serves every other request; metadata calls are
single syscalls served from the kernel's caches and stay on the trio thread.

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

from semfs.catalog.tracker import ChangeTracker, Opener
from semfs.config import CAPTION_XATTR, STATE_DIR_NAME, Settings
from semfs.fs.inodes import ROOT_INODE, InodeTable
from semfs.store.backing import BackingStore, list_directory
from semfs.store.syscalls import RENAME_EXCHANGE

_HIDDEN_ROOT_NAME = os.fsencode(STATE_DIR_NAME)

# O_DIRECT needs aligned buffers the kernel does not promise us; FUSE's own page cache
# settings decide caching. Creation flags are handled by `create`, truncation by setattr.
_STRIPPED_OPEN_FLAGS = os.O_DIRECT | os.O_CREAT | os.O_EXCL | os.O_NOCTTY
_SET_ID_BITS = stat.S_ISUID | stat.S_ISGID


def backing_open_flags(flags: int, writeback_cache: bool) -> int:
    """The flags to open a backing file with, for an open(2) with `flags` in the mount."""
    flags &= ~_STRIPPED_OPEN_FLAGS
    if not writeback_cache:
        return flags
    # As libfuse's passthrough_ll: the kernel fills partial pages by reading, even for a
    # write-only open; and it sends appends at the offset of its own end of file, which
    # O_APPEND on the backing file would ignore for every page written back later.
    if flags & os.O_ACCMODE == os.O_WRONLY:
        flags = (flags & ~os.O_ACCMODE) | os.O_RDWR
    return flags & ~os.O_APPEND


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
    fd: int  # keeps the directory readable even after it is removed
    inode: int
    entries: list[tuple[bytes, os.stat_result]] | None = None  # snapshot; offsets index it


@dataclass(frozen=True)
class ListedEntry:
    number: int
    counts_lookup: bool  # "." and ".." do not take a kernel lookup


class Passthrough:
    def __init__(self, settings: Settings, tracker: ChangeTracker) -> None:
        # With the kernel's writeback cache (settings.writeback_cache), write() lands in
        # the mount's page cache and reaches the daemon later in large requests (on
        # close, fsync, munmap or memory pressure at the latest). The kernel then owns
        # the size and mtime of files it has cached, so it may read pages of a file
        # opened write-only and place O_APPEND writes itself (see backing_open_flags).
        self.writeback_cache = settings.writeback_cache
        self.store = BackingStore(os.fsencode(settings.store))
        info = self.store.lstat(b"")
        self.inodes = InodeTable((info.st_dev, info.st_ino))
        self._tracker = tracker
        self._io_limiter = trio.CapacityLimiter(settings.io_threads)
        self._files: dict[int, OpenFile] = {}  # by fh (= the backing fd)
        self._written_inodes: set[int] = set()  # written since a handle last reported it
        self._fds_by_inode: dict[int, dict[int, None]] = {}  # open files' fds, per inode
        self._dir_fds_by_inode: dict[int, dict[int, None]] = {}  # open directories' fds
        self._dirs: dict[int, DirListing] = {}
        self._dir_handles = itertools.count(1)

    # --- names ----------------------------------------------------------------------

    def _child(self, parent: int, name: bytes) -> bytes:
        """The store-relative path of a name, refusing the hidden state directory."""
        if parent == ROOT_INODE and name == _HIDDEN_ROOT_NAME:
            raise OSError(errno.EPERM, "reserved for semfs")
        return self.inodes.child_path(parent, name)

    def _entry(self, parent: int, name: bytes, info: os.stat_result) -> tuple[int, os.stat_result]:
        """Remember (parent, name) and count a kernel lookup on it."""
        inode = self.inodes.remember(parent, name, info)
        inode.lookups += 1
        return inode.number, info

    def _parent_of(self, number: int) -> int:
        links = self.inodes.get(number).links
        return next(reversed(links))[0] if links else ROOT_INODE

    def _names(self, number: int) -> list[bytes]:
        """Every name the inode has now (a write through one changes them all)."""
        try:
            return self.inodes.paths(number)
        except OSError:
            return []

    def _reader(self, relative: bytes) -> Opener:
        """Opens the file's content read-only for the catalog (never blocks on a FIFO)."""
        return lambda: self.store.open(relative, os.O_RDONLY | os.O_NONBLOCK)

    def _reader_if_file(self, relative: bytes) -> Opener | None:
        try:
            is_file = stat.S_ISREG(self.store.lstat(relative).st_mode)
        except FileNotFoundError:
            return None
        return self._reader(relative) if is_file else None

    def _open_descriptor(self, number: int) -> int | None:
        """A descriptor open on the inode, if any: it still reaches an unlinked file."""
        files = self._fds_by_inode.get(number)
        if files:
            return next(iter(files))
        for listing in self._dirs.values():
            if listing.inode == number:
                return listing.fd
        return None

    def _path_or_descriptor(self, number: int) -> bytes | int:
        try:
            return self.inodes.path(number)
        except FileNotFoundError:
            fd = self._open_descriptor(number)
            if fd is None:
                raise
            return fd

    # --- lookup and attributes ------------------------------------------------------

    def lookup(self, parent: int, name: bytes) -> tuple[int, os.stat_result]:
        if parent == ROOT_INODE and name == _HIDDEN_ROOT_NAME:
            raise OSError(errno.ENOENT, "hidden")
        if name in (b".", b".."):
            number = parent if name == b"." else self._parent_of(parent)
            info = self.getattr(number)
            self.inodes.increment(number)
            return number, info
        return self._entry(parent, name, self.store.lstat(self._child(parent, name)))

    def getattr(self, number: int) -> os.stat_result:
        target = self._path_or_descriptor(number)
        return os.fstat(target) if isinstance(target, int) else self.store.lstat(target)

    def setattr(self, number: int, changes: AttributeChanges, fh: int | None) -> os.stat_result:
        handle = self._files.get(fh) if fh is not None else None
        target = handle.fd if handle is not None else self._path_or_descriptor(number)
        if changes.size is not None:
            self._truncate(target, changes.size, number)
            if handle is not None:
                handle.modified = True
        if changes.uid is not None or changes.gid is not None:
            uid = -1 if changes.uid is None else changes.uid
            gid = -1 if changes.gid is None else changes.gid
            if isinstance(target, int):
                os.fchown(target, uid, gid)
            else:
                self.store.chown(target, uid, gid)
        if changes.mode is not None:  # after chown, which may clear set-ID bits
            mode = stat.S_IMODE(changes.mode)
            if isinstance(target, int):
                os.fchmod(target, mode)
            else:
                self.store.chmod(target, mode)
        if changes.atime_ns is not None or changes.mtime_ns is not None:
            current = self.getattr(number)
            times = (
                current.st_atime_ns if changes.atime_ns is None else changes.atime_ns,
                current.st_mtime_ns if changes.mtime_ns is None else changes.mtime_ns,
            )
            if isinstance(target, int):
                os.utime(target, ns=times)
            else:
                self.store.utime(target, times)
        info = self.getattr(number)
        self._kernel_knows(number, info)  # the change came through the kernel
        return info

    def _truncate(self, target: bytes | int, size: int, number: int) -> None:
        if isinstance(target, int):
            os.ftruncate(target, size)
        else:
            self.store.truncate(target, size)
            self._tracker.written(self._names(number), self._reader(target))

    def readlink(self, number: int) -> bytes:
        return self.store.readlink(self.inodes.path(number))

    def stale_links(self, number: int, info: os.stat_result) -> list[tuple[int, bytes]]:
        """Names to drop from the kernel's cache because the file was changed in the store
        behind the mount; `info` is what the kernel is being told now.

        With the writeback cache the kernel keeps its own size and mtime of a regular file
        it has cached and ignores ours, so a file rewritten in place beside the mount would
        look unchanged until the kernel forgets the inode. Dropping its names makes the
        kernel forget it (a FUSE inode with no name and no open file is evicted), and the
        next lookup brings the new size. Not while the file is open through the mount: the
        kernel's size may include data it has not written back yet.
        """
        inode = self.inodes.find(number)
        if not self.writeback_cache or inode is None or not stat.S_ISREG(info.st_mode):
            return []
        now = (info.st_size, info.st_mtime_ns)
        if inode.reported is None or inode.reported == now:
            inode.reported = now
            return []
        # Kept as it was until the kernel has a fresh inode (the next lookup makes a new
        # Inode here): if a request in flight kept the old one alive, it is dropped again.
        return [] if inode.open_handles else list(inode.links)

    def _kernel_knows(self, number: int, info: os.stat_result) -> None:
        inode = self.inodes.find(number)
        if inode is not None and stat.S_ISREG(info.st_mode):
            inode.reported = (info.st_size, info.st_mtime_ns)

    # --- creating and removing names ------------------------------------------------

    def _give_to_caller(
        self, relative: bytes, parent: int, caller: Caller, mode: int
    ) -> os.stat_result:
        """New entries belong to whoever made them (the daemon runs as root)."""
        parent_info = self.getattr(parent)
        # In a set-group-ID directory, new entries take the directory's group.
        gid = parent_info.st_gid if parent_info.st_mode & stat.S_ISGID else caller.gid
        self.store.chown(relative, caller.uid, gid)
        info = self.store.lstat(relative)
        # chown clears set-user/group-ID bits on files; the caller asked for them.
        if mode & _SET_ID_BITS and not stat.S_ISDIR(info.st_mode):
            self.store.chmod(relative, mode)
            info = self.store.lstat(relative)
        return info

    def mkdir(
        self, parent: int, name: bytes, mode: int, caller: Caller
    ) -> tuple[int, os.stat_result]:
        relative = self._child(parent, name)
        mode = stat.S_IMODE(mode) & ~caller.umask
        self.store.mkdir(relative, mode)
        return self._entry(parent, name, self._give_to_caller(relative, parent, caller, mode))

    def mknod(
        self, parent: int, name: bytes, mode: int, rdev: int, caller: Caller
    ) -> tuple[int, os.stat_result]:
        relative = self._child(parent, name)
        permissions = stat.S_IMODE(mode) & ~caller.umask
        self.store.mknod(relative, stat.S_IFMT(mode) | permissions, rdev)
        info = self._give_to_caller(relative, parent, caller, permissions)
        return self._entry(parent, name, info)

    def symlink(
        self, parent: int, name: bytes, target: bytes, caller: Caller
    ) -> tuple[int, os.stat_result]:
        relative = self._child(parent, name)
        self.store.symlink(target, relative)
        return self._entry(parent, name, self._give_to_caller(relative, parent, caller, 0))

    def link(self, number: int, new_parent: int, new_name: bytes) -> tuple[int, os.stat_result]:
        relative = self._child(new_parent, new_name)
        self.store.link(self.inodes.path(number), relative)
        number, info = self._entry(new_parent, new_name, self.store.lstat(relative))
        if stat.S_ISREG(info.st_mode):  # content unchanged: only the new name is news
            self._tracker.written([relative], self._reader(relative))
        return number, info

    def unlink(self, parent: int, name: bytes) -> None:
        relative = self._child(parent, name)
        info = self.store.lstat(relative)
        self.store.unlink(relative)
        self._tracker.removed(relative, is_dir=False)
        self.inodes.unlinked(parent, name, was_last_link=info.st_nlink <= 1)

    def rmdir(self, parent: int, name: bytes) -> None:
        relative = self._child(parent, name)
        self.store.rmdir(relative)
        self._tracker.removed(relative, is_dir=True)
        self.inodes.unlinked(parent, name, was_last_link=True)

    def rename(
        self, old_parent: int, old_name: bytes, new_parent: int, new_name: bytes, flags: int
    ) -> None:
        old = self._child(old_parent, old_name)
        new = self._child(new_parent, new_name)
        moved = self.store.lstat(old)
        try:
            replaced: os.stat_result | None = self.store.lstat(new)
        except FileNotFoundError:
            replaced = None
        self.store.rename(old, new, flags)
        if flags & RENAME_EXCHANGE:
            self.inodes.exchanged((old_parent, old_name), (new_parent, new_name))
            self._tracker.exchanged(old, new, self._reader_if_file(old), self._reader_if_file(new))
            return
        if replaced is not None and (replaced.st_dev, replaced.st_ino) == (
            moved.st_dev,
            moved.st_ino,
        ):
            return  # renaming a name onto a hard link of itself does nothing
        replaced_last = replaced is not None and (
            stat.S_ISDIR(replaced.st_mode) or replaced.st_nlink <= 1
        )
        self.inodes.renamed((old_parent, old_name), (new_parent, new_name), replaced_last)
        reader = self._reader(new) if stat.S_ISREG(moved.st_mode) else None
        self._tracker.renamed(old, new, stat.S_ISDIR(moved.st_mode), reader)

    # --- file data -------------------------------------------------------------------

    def open(self, number: int, flags: int) -> int:
        target = self._path_or_descriptor(number)
        flags = backing_open_flags(flags, self.writeback_cache)
        if isinstance(target, int):  # unlinked but open elsewhere: reopen that file
            fd = os.open(f"/proc/self/fd/{target}", flags)
        else:
            fd = self.store.open(target, flags)
        fh = self._register_handle(fd, number)
        # libfuse asks for atomic O_TRUNC: the truncation happens here, not in setattr,
        # and is a change even if nothing is written afterwards.
        self._files[fh].modified = bool(flags & os.O_TRUNC)
        return fh

    def create(
        self, parent: int, name: bytes, mode: int, flags: int, caller: Caller
    ) -> tuple[int, int, os.stat_result]:
        relative = self._child(parent, name)
        mode = stat.S_IMODE(mode) & ~caller.umask
        flags = backing_open_flags(flags, self.writeback_cache) | os.O_CREAT | os.O_EXCL
        fd = self.store.open(relative, flags, mode)
        try:
            info = self._give_to_caller(relative, parent, caller, mode)
        except OSError:
            os.close(fd)
            self.store.unlink(relative)
            raise
        number, info = self._entry(parent, name, info)
        fh = self._register_handle(fd, number)
        self._files[fh].modified = True  # a new file is news, even if left empty
        return fh, number, info

    def _register_handle(self, fd: int, number: int) -> int:
        self._files[fd] = OpenFile(fd, number)
        self._fds_by_inode.setdefault(number, {})[fd] = None
        self.inodes.opened(number)
        return fd

    def _handle(self, fh: int) -> OpenFile:
        try:
            return self._files[fh]
        except KeyError:
            raise OSError(errno.EBADF, "unknown file handle") from None

    async def read(self, fh: int, offset: int, size: int) -> bytes | bytearray:
        fd = self._handle(fh).fd
        cached = read_if_cached(fd, offset, size)
        if cached is not None:  # a memory copy: no need to leave the trio thread
            return cached
        return await trio.to_thread.run_sync(os.pread, fd, size, offset, limiter=self._io_limiter)

    async def write(self, fh: int, offset: int, data: bytes) -> int:
        handle = self._handle(fh)
        handle.modified = True
        # With the writeback cache the kernel writes back through any writable handle
        # of the inode: the one being closed learns of it through the inode.
        self._written_inodes.add(handle.inode)
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
        written = handle.modified or handle.inode in self._written_inodes
        self._written_inodes.discard(handle.inode)
        try:
            info = os.fstat(handle.fd)
            if written:  # the kernel's size and mtime are the store's now
                self._kernel_knows(handle.inode, info)
            if written and stat.S_ISREG(info.st_mode):
                # Before closing: the catalog reads the content through a reopened
                # descriptor, wherever the file's names have gone by then.
                reader = _reader_of_descriptor(handle.fd)
                self._tracker.written(self._names(handle.inode), reader)
        finally:
            fds = self._fds_by_inode.get(handle.inode, {})
            fds.pop(handle.fd, None)
            if not fds:
                self._fds_by_inode.pop(handle.inode, None)
            os.close(handle.fd)
            self.inodes.closed(handle.inode)

    # --- directories ------------------------------------------------------------------

    def opendir(self, number: int) -> int:
        target = self._path_or_descriptor(number)
        if isinstance(target, int):
            fd = os.open(f"/proc/self/fd/{target}", os.O_RDONLY | os.O_DIRECTORY)
        else:
            fd = self.store.open_directory(target)
        fh = next(self._dir_handles)
        self._dirs[fh] = DirListing(fd, number)
        self._dir_fds_by_inode.setdefault(number, {})[fd] = None
        self.inodes.opened(number)
        return fh

    async def list_directory(self, fh: int, restart: bool) -> DirListing:
        """The handle's snapshot of its directory, taken anew when reading from the start.

        It begins with "." and "..", as `ls -a` expects.
        """
        listing = self._dirs.get(fh)
        if listing is None:
            raise OSError(errno.EBADF, "unknown directory handle")
        if listing.entries is None or restart:
            hidden = _HIDDEN_ROOT_NAME if listing.inode == ROOT_INODE else None
            entries = await trio.to_thread.run_sync(
                list_directory, listing.fd, hidden, limiter=self._io_limiter
            )
            dots = [
                (b".", os.fstat(listing.fd)),
                (b"..", self.getattr(self._parent_of(listing.inode))),
            ]
            listing.entries = dots + entries
        return listing

    def listed_entry(self, parent: int, name: bytes, info: os.stat_result) -> ListedEntry:
        """The inode for an entry that readdir is about to return."""
        if name == b".":
            return ListedEntry(parent, counts_lookup=False)
        if name == b"..":
            return ListedEntry(self._parent_of(parent), counts_lookup=False)
        return ListedEntry(self.inodes.remember(parent, name, info).number, counts_lookup=True)

    def releasedir(self, fh: int) -> None:
        listing = self._dirs.pop(fh, None)
        if listing is not None:
            fds = self._dir_fds_by_inode.get(listing.inode, {})
            fds.pop(listing.fd, None)
            if not fds:
                self._dir_fds_by_inode.pop(listing.inode, None)
            os.close(listing.fd)
            self.inodes.closed(listing.inode)

    def statfs(self) -> os.statvfs_result:
        return self.store.statvfs()

    # --- extended attributes ------------------------------------------------------------

    # An unlinked file that is still open keeps its attributes: reach it by descriptor.
    # An open file is reached by descriptor anyway: the kernel asks for
    # security.capability before every write(2) to a file (to clear it), and fgetxattr
    # on a descriptor is much cheaper than resolving the path again.

    # And `ls -l` asks for two attributes of every entry (an ACL and a security label)
    # while it reads the directory: reach those through the listing's descriptor.

    def getxattr(self, number: int, name: bytes) -> bytes:
        fds = self._fds_by_inode.get(number)
        if fds:
            return os.getxattr(next(iter(fds)), name)
        listed = self._via_open_directory(number)
        if listed is not None:
            return os.getxattr(listed, name, follow_symlinks=False)
        target = self._path_or_descriptor(number)
        if isinstance(target, int):
            return os.getxattr(target, name)
        return self.store.getxattr(target, name)

    def _via_open_directory(self, number: int) -> bytes | None:
        """/proc/self/fd/<dir>/<name> for an inode whose directory is open, else None:
        the directory was opened safely inside the store, and the name is one component
        that the l*xattr calls do not follow if it is a symlink."""
        links = self.inodes.get(number).links
        if not links:
            return None
        parent, name = next(reversed(links))
        directories = self._dir_fds_by_inode.get(parent)
        if not directories:
            return None
        return b"/proc/self/fd/%d/%s" % (next(iter(directories)), name)

    def setxattr(self, number: int, name: bytes, value: bytes) -> None:
        target = self._path_or_descriptor(number)
        if isinstance(target, int):
            os.setxattr(target, name, value)
        else:
            self.store.setxattr(target, name, value)
        if name == CAPTION_XATTR:  # the image is to be described again
            self._tracker.caption_changed(self._names(number))

    def listxattr(self, number: int) -> list[bytes]:
        target = self._path_or_descriptor(number)
        names = os.listxattr(target) if isinstance(target, int) else self.store.listxattr(target)
        return [os.fsencode(name) for name in names]

    def removexattr(self, number: int, name: bytes) -> None:
        target = self._path_or_descriptor(number)
        if isinstance(target, int):
            os.removexattr(target, name)
        else:
            self.store.removexattr(target, name)
        if name == CAPTION_XATTR:  # the image is to be described again
            self._tracker.caption_changed(self._names(number))

    def close_all(self) -> None:
        """Close every backing descriptor (at unmount)."""
        for fh in list(self._files):
            self.release(fh)
        for fh in list(self._dirs):
            self.releasedir(fh)
        self.store.close()


def _reader_of_descriptor(fd: int) -> Opener:
    return lambda: os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK)


def read_if_cached(fd: int, offset: int, size: int) -> bytearray | None:
    """The data if the backing file's page cache holds all of it, else None.

    RWF_NOWAIT makes the read fail rather than wait for the disk, so this costs a
    memory copy and never blocks the caller.
    """
    buffer = bytearray(size)
    try:
        count = os.preadv(fd, [buffer], offset, os.RWF_NOWAIT)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError as error:
        if error.errno in (errno.EOPNOTSUPP, errno.EINVAL):  # a filesystem without it
            return None
        raise
    # A short read is the end of the file, or only the cached part of the range: FUSE
    # takes a short reply as the end of the file, so it must be the real one.
    if count < size and offset + count < os.fstat(fd).st_size:
        return None
    del buffer[count:]
    return buffer


def _write_all(fd: int, data: bytes, offset: int) -> int:
    """FUSE requires every byte written (short writes only with direct_io)."""
    view = memoryview(data)
    written = 0
    while written < len(view):
        written += os.pwrite(fd, view[written:], offset + written)
    return written
