"""System calls on the store, by store-relative path.

Every call is made relative to a descriptor of the store's root (`*at()` calls), never
with the store's absolute path in front: a path that fits in PATH_MAX inside the mount
then fits on the backing side too, and the store directory itself may be renamed while
mounted. Paths are bytes; b"" is the root. Errors are `OSError`s.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from typing import TypeVar

from semfs.fs.syscalls import renameat2
from semfs.hashing import content_hash

T = TypeVar("T")


def _at(relative: bytes) -> bytes:
    return relative or b"."


class BackingStore:
    def __init__(self, root: bytes) -> None:
        self.root = root
        self._fd = os.open(root, os.O_PATH | os.O_DIRECTORY)

    def close(self) -> None:
        os.close(self._fd)

    # --- names ------------------------------------------------------------------------

    def lstat(self, relative: bytes) -> os.stat_result:
        return os.stat(_at(relative), dir_fd=self._fd, follow_symlinks=False)

    def open(self, relative: bytes, flags: int, mode: int = 0o777) -> int:
        return os.open(_at(relative), flags, mode, dir_fd=self._fd)

    def mkdir(self, relative: bytes, mode: int) -> None:
        os.mkdir(relative, mode, dir_fd=self._fd)

    def mknod(self, relative: bytes, mode: int, device: int) -> None:
        os.mknod(relative, mode, device, dir_fd=self._fd)

    def symlink(self, target: bytes, relative: bytes) -> None:
        os.symlink(target, relative, dir_fd=self._fd)

    def readlink(self, relative: bytes) -> bytes:
        return os.readlink(relative, dir_fd=self._fd)

    def link(self, existing: bytes, new: bytes) -> None:
        os.link(existing, new, src_dir_fd=self._fd, dst_dir_fd=self._fd, follow_symlinks=False)

    def unlink(self, relative: bytes) -> None:
        os.unlink(relative, dir_fd=self._fd)

    def rmdir(self, relative: bytes) -> None:
        os.rmdir(relative, dir_fd=self._fd)

    def rename(self, old: bytes, new: bytes, flags: int) -> None:
        renameat2(self._fd, old, self._fd, new, flags)

    # --- attributes -------------------------------------------------------------------

    def chmod(self, relative: bytes, mode: int) -> None:
        """chmod without following a symlink; Linux cannot change a symlink's own mode."""
        if stat.S_ISLNK(self.lstat(relative).st_mode):
            raise OSError(errno.EOPNOTSUPP, "cannot change the mode of a symlink")
        os.chmod(_at(relative), mode, dir_fd=self._fd)

    def chown(self, relative: bytes, uid: int, gid: int) -> None:
        os.chown(_at(relative), uid, gid, dir_fd=self._fd, follow_symlinks=False)

    def utime(self, relative: bytes, times_ns: tuple[int, int]) -> None:
        os.utime(_at(relative), ns=times_ns, dir_fd=self._fd, follow_symlinks=False)

    def truncate(self, relative: bytes, size: int) -> None:
        fd = self.open(relative, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
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
        if not relative:
            return call(b"/proc/self/fd/%d" % self._fd)
        head, _, name = relative.rpartition(b"/")
        parent = os.open(_at(head), os.O_PATH | os.O_DIRECTORY, dir_fd=self._fd)
        try:
            return call(b"/proc/self/fd/%d/%s" % (parent, name))
        finally:
            os.close(parent)

    def getxattr(self, relative: bytes, name: bytes) -> bytes:
        return self._via_parent(relative, lambda p: os.getxattr(p, name, follow_symlinks=False))

    def setxattr(self, relative: bytes, name: bytes, value: bytes) -> None:
        self._via_parent(relative, lambda p: os.setxattr(p, name, value, follow_symlinks=False))

    def listxattr(self, relative: bytes) -> list[str]:
        return self._via_parent(relative, lambda p: os.listxattr(p, follow_symlinks=False))

    def removexattr(self, relative: bytes, name: bytes) -> None:
        self._via_parent(relative, lambda p: os.removexattr(p, name, follow_symlinks=False))

    # --- directories ----------------------------------------------------------------------

    def content_hash(self, relative: bytes) -> str:
        """The file's content hash (blocking: call from a worker thread)."""
        return content_hash(self.open(relative, os.O_RDONLY | os.O_NOFOLLOW))

    def open_directory(self, relative: bytes) -> int:
        """A descriptor that keeps the directory readable even after it is removed."""
        return self.open(relative, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)


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
