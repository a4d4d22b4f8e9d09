"""System calls on the store, by store-relative path.

Every call is made on a single name relative to a descriptor of its directory (`*at()`
calls), never with the store's absolute path in front, so the store directory itself
may be renamed while mounted. The directory is opened with openat2(RESOLVE_BENEATH |
RESOLVE_NO_SYMLINKS), and the final name is never followed if it is a symlink: the
daemon runs as root, and someone who can change the store directly must not be able to
lead it outside by swapping a directory the kernel knows for a symlink. A directory
path too long for one call (a program deep below the mount's root may use paths of up
to PATH_MAX from there) is opened a piece at a time.

Paths are bytes; b"" is the root. Errors are `OSError`s.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from semfs.store.hashing import descriptor_hash
from semfs.store.syscalls import (
    RESOLVE_BENEATH,
    RESOLVE_NO_MAGICLINKS,
    RESOLVE_NO_SYMLINKS,
    openat2,
    renameat2,
)

T = TypeVar("T")


# The longest path handed to one call; PATH_MAX (4096) counts the terminating NUL.
_LONGEST = os.pathconf("/", "PC_PATH_MAX") - 1
_BENEATH = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS


_DOTS = frozenset((b".", b".."))


def _at(relative: bytes) -> bytes:
    return relative or b"."


_STAT_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


def _split(relative: bytes) -> tuple[bytes, bytes]:
    """(directory, name) of a store path; EINVAL for '.' or '..' in it."""
    head, _, name = relative.rpartition(b"/")
    if name in _DOTS or (b"." in head and not _DOTS.isdisjoint(head.split(b"/"))):
        # The directory itself or its parent: no entry of the store, and ".." could
        # climb out of it.
        raise OSError(errno.EINVAL, f"{relative!r}: '.' and '..' name no entry")
    return head, name


class BackingStore:
    def __init__(self, root: bytes) -> None:
        self._fd = os.open(root, os.O_PATH | os.O_DIRECTORY)

    def close(self) -> None:
        os.close(self._fd)

    @contextmanager
    def _place(self, relative: bytes) -> Iterator[tuple[int, bytes]]:
        """(descriptor of the directory, single name in it) for `relative`."""
        head, name = _split(relative)
        if not head:  # in the root: no directory to resolve
            yield self._fd, _at(name)
            return
        directory = self._open_directory(head)
        try:
            yield directory, name
        finally:
            os.close(directory)

    def _open_directory(self, relative: bytes) -> int:
        """An O_PATH descriptor of a directory strictly inside the store, reached through
        no symlink; opened a piece at a time if its path is longer than one call takes."""
        fd = os.dup(self._fd)
        rest = relative
        while rest:
            cut = len(rest) if len(rest) <= _LONGEST else rest.rfind(b"/", 0, _LONGEST + 1)
            if cut <= 0:
                os.close(fd)
                raise OSError(errno.ENAMETOOLONG, "path component too long")
            part, rest = rest[:cut], rest[cut + 1 :]
            try:
                inner = openat2(fd, part, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, _BENEATH)
            finally:
                os.close(fd)
            fd = inner
        return fd

    # --- names ------------------------------------------------------------------------

    def lstat(self, relative: bytes) -> os.stat_result:
        if len(relative) > _LONGEST:
            with self._place(relative) as (fd, path):
                return os.stat(path, dir_fd=fd, follow_symlinks=False)
        _split(relative)  # refuses '.' and '..' as _place does
        # One resolution of the whole path, not a directory descriptor then a stat in it:
        # 3 system calls instead of 5 (a search listing stats each of its results, and
        # `ls -l` each entry). O_PATH | O_NOFOLLOW on a trailing symlink gives the link.
        fd = openat2(self._fd, _at(relative), _STAT_FLAGS, _BENEATH)
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def open(self, relative: bytes, flags: int, mode: int = 0o777) -> int:
        """Never through a symlink: the kernel resolves symlinks in the mount itself."""
        with self._place(relative) as (fd, path):
            return os.open(path, flags | os.O_NOFOLLOW, mode, dir_fd=fd)

    def mkdir(self, relative: bytes, mode: int) -> None:
        with self._place(relative) as (fd, path):
            os.mkdir(path, mode, dir_fd=fd)

    def mknod(self, relative: bytes, mode: int, device: int) -> None:
        with self._place(relative) as (fd, path):
            os.mknod(path, mode, device, dir_fd=fd)

    def symlink(self, target: bytes, relative: bytes) -> None:
        with self._place(relative) as (fd, path):
            os.symlink(target, path, dir_fd=fd)

    def readlink(self, relative: bytes) -> bytes:
        with self._place(relative) as (fd, path):
            return os.readlink(path, dir_fd=fd)

    def link(self, existing: bytes, new: bytes) -> None:
        with self._place(existing) as (old_fd, old), self._place(new) as (new_fd, path):
            os.link(old, path, src_dir_fd=old_fd, dst_dir_fd=new_fd, follow_symlinks=False)

    def unlink(self, relative: bytes) -> None:
        with self._place(relative) as (fd, path):
            os.unlink(path, dir_fd=fd)

    def rmdir(self, relative: bytes) -> None:
        with self._place(relative) as (fd, path):
            os.rmdir(path, dir_fd=fd)

    def rename(self, old: bytes, new: bytes, flags: int) -> None:
        with self._place(old) as (old_fd, old_path), self._place(new) as (new_fd, new_path):
            renameat2(old_fd, old_path, new_fd, new_path, flags)

    # --- attributes -------------------------------------------------------------------

    def chmod(self, relative: bytes, mode: int) -> None:
        """chmod without following a symlink; Linux cannot change a symlink's own mode."""
        # The entry itself (O_PATH | O_NOFOLLOW), then chmod through its /proc link: no
        # window in which a symlink could be swapped in (os.chmod cannot combine dir_fd
        # with follow_symlinks=False).
        entry = self.open(relative, os.O_PATH)
        try:
            if stat.S_ISLNK(os.fstat(entry).st_mode):
                raise OSError(errno.EOPNOTSUPP, "cannot change the mode of a symlink")
            os.chmod(f"/proc/self/fd/{entry}", mode)
        finally:
            os.close(entry)

    def chown(self, relative: bytes, uid: int, gid: int) -> None:
        with self._place(relative) as (fd, path):
            os.chown(path, uid, gid, dir_fd=fd, follow_symlinks=False)

    def utime(self, relative: bytes, times_ns: tuple[int, int]) -> None:
        with self._place(relative) as (fd, path):
            os.utime(path, ns=times_ns, dir_fd=fd, follow_symlinks=False)

    def truncate(self, relative: bytes, size: int) -> None:
        fd = self.open(relative, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.ftruncate(fd, size)
        finally:
            os.close(fd)

    def statvfs(self) -> os.statvfs_result:
        return os.statvfs(self._fd)

    # --- extended attributes ------------------------------------------------------------
    # The xattr calls take no dir_fd: reach the entry as /proc/self/fd/<parent>/<name>,
    # which stays short however deep the entry is, and does not follow a final symlink.

    def _via_parent(self, relative: bytes, call: Callable[[bytes], T]) -> T:
        # For the root this is /proc/self/fd/<root>/.: without the "/." the l*xattr
        # calls would act on the magic link itself.
        with self._place(relative) as (parent, name):
            return call(b"/proc/self/fd/%d/%s" % (parent, name))

    def getxattr(self, relative: bytes, name: bytes) -> bytes:
        return self._via_parent(relative, lambda p: os.getxattr(p, name, follow_symlinks=False))

    def setxattr(self, relative: bytes, name: bytes, value: bytes) -> None:
        self._via_parent(relative, lambda p: os.setxattr(p, name, value, follow_symlinks=False))

    def listxattr(self, relative: bytes) -> list[str]:
        return self._via_parent(relative, lambda p: os.listxattr(p, follow_symlinks=False))

    def removexattr(self, relative: bytes, name: bytes) -> None:
        self._via_parent(relative, lambda p: os.removexattr(p, name, follow_symlinks=False))

    # --- content and directories --------------------------------------------------------

    def content_hash(self, relative: bytes) -> str:
        """The file's content hash (blocking: call from a worker thread)."""
        fd = self.open(relative, os.O_RDONLY | os.O_NONBLOCK)
        try:
            return descriptor_hash(fd)
        finally:
            os.close(fd)

    def open_directory(self, relative: bytes) -> int:
        """A descriptor that keeps the directory readable even after it is removed."""
        return self.open(relative, os.O_RDONLY | os.O_DIRECTORY)


def list_directory(fd: int, hidden: bytes | None) -> list[tuple[bytes, os.stat_result]]:
    """(name, lstat) of each entry of the open directory `fd`, except `hidden`.

    Blocking: call from a worker thread. The listing starts from the beginning each time.
    """
    return list(iterate_directory(fd, hidden))


def iterate_directory(fd: int, hidden: bytes | None) -> Iterator[tuple[bytes, os.stat_result]]:
    with os.scandir(fd) as scan:
        for entry in scan:
            name = os.fsencode(entry.name)
            if name == hidden:
                continue
            try:
                yield name, entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed while we listed
