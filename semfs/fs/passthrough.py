"""Real files: the store seen through the mount, read and write.

Typed helpers that the FUSE adapter (`operations.py`) calls: they keep the inode table,
the open handles and the change reports, and leave the system calls to `BackingStore`
(by path), `target` (path or descriptor) and `file_data` (the bytes of open files).
They raise `OSError` with the right errno; the adapter turns that into `FUSEError`.
File data and directory listings move in worker threads (`trio.to_thread`), so a slow
disk never stalls the trio thread that serves every other request; metadata calls are
single syscalls served from the kernel's caches and stay on the trio thread.

Every change that could alter the catalog is reported to the `ChangeTracker`.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from typing import Protocol

import trio

from semfs.catalog.tracker import ChangeTracker, Opener
from semfs.config import CAPTION_XATTR, STATE_DIR_NAME, Settings
from semfs.fs import file_data
from semfs.fs.handles import DirListing, Handles, OpenFile
from semfs.fs.inodes import ROOT_INODE, InodeTable
from semfs.fs.target import Descriptor, StorePath, Target
from semfs.store.backing import BackingStore, list_directory
from semfs.store.syscalls import RENAME_EXCHANGE

_HIDDEN_ROOT_NAME = os.fsencode(STATE_DIR_NAME)
_SET_ID_BITS = stat.S_ISUID | stat.S_ISGID
_ACL_XATTRS = frozenset({b"system.posix_acl_access", b"system.posix_acl_default"})


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
        # opened write-only and place O_APPEND writes itself (see file_data.backing_open_flags).
        self.writeback_cache = settings.writeback_cache
        self.store = BackingStore(os.fsencode(settings.store))
        info = self.store.lstat(b"")
        self.inodes = InodeTable((info.st_dev, info.st_ino))
        self._tracker = tracker
        self._io_limiter = trio.CapacityLimiter(settings.io_threads)
        self._handles = Handles()
        self._written_inodes: set[int] = set()  # written since a handle last reported it

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
        return StorePath(self.store, relative).reader()

    def _reader_if_file(self, relative: bytes) -> Opener | None:
        try:
            is_file = stat.S_ISREG(self.store.lstat(relative).st_mode)
        except FileNotFoundError:
            return None
        return self._reader(relative) if is_file else None

    def _target(self, number: int) -> Target:
        """The inode by its store path, or by a descriptor open on it if it has no name
        left (unlinked, but still open)."""
        try:
            return StorePath(self.store, self.inodes.path(number))
        except FileNotFoundError:
            fd = self._handles.descriptor(number)
            if fd is None:
                raise
            return Descriptor(fd)

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
        return self._target(number).stat()

    def setattr(self, number: int, changes: AttributeChanges, fh: int | None) -> os.stat_result:
        handle = self._handles.find_file(fh)
        target = Descriptor(handle.fd) if handle is not None else self._target(number)
        if changes.size is not None:
            target.truncate(changes.size)
            if handle is not None:
                handle.modified = True
            elif target.relative is not None:  # else unlinked: no name left to report
                self._tracker.written(self._names(number), self._reader(target.relative))
        if changes.uid is not None or changes.gid is not None:
            uid = -1 if changes.uid is None else changes.uid
            gid = -1 if changes.gid is None else changes.gid
            target.chown(uid, gid)
        if changes.mode is not None:  # after chown, which may clear set-ID bits
            target.chmod(stat.S_IMODE(changes.mode))
        if changes.atime_ns is not None or changes.mtime_ns is not None:
            current = self.getattr(number)
            times = (
                current.st_atime_ns if changes.atime_ns is None else changes.atime_ns,
                current.st_mtime_ns if changes.mtime_ns is None else changes.mtime_ns,
            )
            target.utime(times)
        info = self.getattr(number)
        self._kernel_knows(number, info)  # the change came through the kernel
        return info

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
        flags = file_data.backing_open_flags(flags, self.writeback_cache)
        handle = self._register_handle(self._target(number).open(flags), number)
        # libfuse asks for atomic O_TRUNC: the truncation happens here, not in setattr,
        # and is a change even if nothing is written afterwards.
        handle.modified = bool(flags & os.O_TRUNC)
        return handle.fd

    def create(
        self, parent: int, name: bytes, mode: int, flags: int, caller: Caller
    ) -> tuple[int, int, os.stat_result]:
        relative = self._child(parent, name)
        mode = stat.S_IMODE(mode) & ~caller.umask
        flags = file_data.backing_open_flags(flags, self.writeback_cache) | os.O_CREAT | os.O_EXCL
        fd = self.store.open(relative, flags, mode)
        try:
            info = self._give_to_caller(relative, parent, caller, mode)
        except OSError:
            os.close(fd)
            self.store.unlink(relative)
            raise
        number, info = self._entry(parent, name, info)
        handle = self._register_handle(fd, number)
        handle.modified = True  # a new file is news, even if left empty
        return handle.fd, number, info

    def _register_handle(self, fd: int, number: int) -> OpenFile:
        handle = self._handles.add_file(fd, number)
        self.inodes.opened(number)
        return handle

    async def read(self, fh: int, offset: int, size: int) -> bytes | bytearray:
        fd = self._handles.file(fh).fd
        return await file_data.read(fd, offset, size, self._io_limiter)

    async def write(self, fh: int, offset: int, data: bytes) -> int:
        handle = self._handles.file(fh)
        handle.modified = True
        # With the writeback cache the kernel writes back through any writable handle
        # of the inode: the one being closed learns of it through the inode.
        self._written_inodes.add(handle.inode)
        return await file_data.write(handle.fd, offset, data, self._io_limiter)

    async def fsync(self, fh: int, datasync: bool) -> None:
        await file_data.sync(self._handles.file(fh).fd, datasync, self._io_limiter)

    def release(self, fh: int) -> None:
        handle = self._handles.find_file(fh)
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
                reader = Descriptor(handle.fd).reader()
                self._tracker.written(self._names(handle.inode), reader)
        finally:
            self._handles.close_file(handle)
            self.inodes.closed(handle.inode)

    # --- directories ------------------------------------------------------------------

    def opendir(self, number: int) -> int:
        fh = self._handles.add_directory(self._target(number).open_directory(), number)
        self.inodes.opened(number)
        return fh

    async def list_directory(self, fh: int, restart: bool) -> DirListing:
        """The handle's snapshot of its directory, taken anew when reading from the start.

        It begins with "." and "..", as `ls -a` expects.
        """
        listing = self._handles.directory(fh)
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
        listing = self._handles.close_directory(fh)
        if listing is not None:
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

    def acl_of(self, path: bytes) -> bytes:
        """The access ACL of the stored file at store path `path` (ENODATA: none)."""
        try:
            return self.store.getxattr(path, b"system.posix_acl_access")
        except OSError as error:
            if error.errno == errno.EOPNOTSUPP:  # a store whose filesystem keeps no ACLs
                raise OSError(errno.ENODATA, "no ACL") from None
            raise

    def getxattr(self, number: int, name: bytes) -> bytes:
        try:
            return self._getxattr(number, name)
        except OSError as error:
            # A store on a filesystem without ACLs (mounted noacl, or no xattrs at all)
            # answers EOPNOTSUPP; with posix_acl the kernel would fail every permission
            # check that consults an ACL with it. "No ACL" is the truth, as ENODATA.
            if error.errno == errno.EOPNOTSUPP and name in _ACL_XATTRS:
                raise OSError(errno.ENODATA, "no ACL: the store's filesystem keeps none") from None
            raise

    def _getxattr(self, number: int, name: bytes) -> bytes:
        fd = self._handles.file_descriptor(number)
        if fd is not None:
            return Descriptor(fd).getxattr(name)
        listed = self._via_open_directory(number)
        if listed is not None:
            return os.getxattr(listed, name, follow_symlinks=False)
        return self._target(number).getxattr(name)

    def _via_open_directory(self, number: int) -> bytes | None:
        """/proc/self/fd/<dir>/<name> for an inode whose directory is open, else None:
        the directory was opened safely inside the store, and the name is one component
        that the l*xattr calls do not follow if it is a symlink."""
        links = self.inodes.get(number).links
        if not links:
            return None
        parent, name = next(reversed(links))
        directory = self._handles.directory_descriptor(parent)
        if directory is None:
            return None
        return b"/proc/self/fd/%d/%s" % (directory, name)

    def setxattr(self, number: int, name: bytes, value: bytes) -> None:
        self._target(number).setxattr(name, value)
        if name == CAPTION_XATTR:  # the image is to be described again
            self._tracker.caption_changed(self._names(number))

    def listxattr(self, number: int) -> list[bytes]:
        return [os.fsencode(name) for name in self._target(number).listxattr()]

    def removexattr(self, number: int, name: bytes) -> None:
        self._target(number).removexattr(name)
        if name == CAPTION_XATTR:  # the image is to be described again
            self._tracker.caption_changed(self._names(number))

    def close_all(self) -> None:
        """Close every backing descriptor (at unmount)."""
        for fh in self._handles.file_handles():
            self.release(fh)
        for fh in self._handles.directory_handles():
            self.releasedir(fh)
        self.store.close()
