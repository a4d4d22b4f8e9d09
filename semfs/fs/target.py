"""How a request reaches a real file: by its store path or by a descriptor, chosen once.

The passthrough resolves an inode to a `Target` once per request, as pyfuse3's example
binds `os.truncate` or `os.ftruncate`: a descriptor when the request names an open
handle, or when the file is unlinked and only a descriptor still reaches it; else the
store path. Each method then makes the matching call: through `BackingStore` for a path
(never following a final symlink), or the descriptor form of the system call.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol

from semfs.store.backing import BackingStore


class Target(Protocol):
    """One entry of the store, reached one way."""

    @property
    def relative(self) -> bytes | None:
        """The store path, or None when reached by descriptor."""

    def stat(self) -> os.stat_result: ...
    def chown(self, uid: int, gid: int) -> None: ...
    def chmod(self, mode: int) -> None: ...
    def utime(self, times_ns: tuple[int, int]) -> None: ...
    def truncate(self, size: int) -> None: ...
    def open(self, flags: int) -> int: ...
    def open_directory(self) -> int: ...
    def getxattr(self, name: bytes) -> bytes: ...
    def setxattr(self, name: bytes, value: bytes) -> None: ...
    def listxattr(self) -> list[str]: ...
    def removexattr(self, name: bytes) -> None: ...

    def reader(self) -> Callable[[], int]:
        """Opens the content read-only for the catalog (never blocks on a FIFO)."""


class StorePath:
    """An entry by its store-relative path."""

    def __init__(self, store: BackingStore, relative: bytes) -> None:
        self._store = store
        self.relative = relative

    def stat(self) -> os.stat_result:
        return self._store.lstat(self.relative)

    def chown(self, uid: int, gid: int) -> None:
        self._store.chown(self.relative, uid, gid)

    def chmod(self, mode: int) -> None:
        self._store.chmod(self.relative, mode)

    def utime(self, times_ns: tuple[int, int]) -> None:
        self._store.utime(self.relative, times_ns)

    def truncate(self, size: int) -> None:
        self._store.truncate(self.relative, size)

    def open(self, flags: int) -> int:
        return self._store.open(self.relative, flags)

    def reader(self) -> Callable[[], int]:
        return lambda: self.open(os.O_RDONLY | os.O_NONBLOCK)

    def open_directory(self) -> int:
        return self._store.open_directory(self.relative)

    def getxattr(self, name: bytes) -> bytes:
        return self._store.getxattr(self.relative, name)

    def setxattr(self, name: bytes, value: bytes) -> None:
        self._store.setxattr(self.relative, name, value)

    def listxattr(self) -> list[str]:
        return self._store.listxattr(self.relative)

    def removexattr(self, name: bytes) -> None:
        self._store.removexattr(self.relative, name)


class Descriptor:
    """An entry by a descriptor open on it (which still reaches it once unlinked); the
    descriptor stays its owner's to close."""

    relative = None

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def stat(self) -> os.stat_result:
        return os.fstat(self._fd)

    def chown(self, uid: int, gid: int) -> None:
        os.fchown(self._fd, uid, gid)

    def chmod(self, mode: int) -> None:
        os.fchmod(self._fd, mode)

    def utime(self, times_ns: tuple[int, int]) -> None:
        os.utime(self._fd, ns=times_ns)

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)

    def open(self, flags: int) -> int:
        """A new open file description of the same file, as open(2) of its name would."""
        return os.open(f"/proc/self/fd/{self._fd}", flags)

    def reader(self) -> Callable[[], int]:
        return lambda: self.open(os.O_RDONLY | os.O_NONBLOCK)

    def open_directory(self) -> int:
        return self.open(os.O_RDONLY | os.O_DIRECTORY)

    def getxattr(self, name: bytes) -> bytes:
        return os.getxattr(self._fd, name)

    def setxattr(self, name: bytes, value: bytes) -> None:
        os.setxattr(self._fd, name, value)

    def listxattr(self) -> list[str]:
        return os.listxattr(self._fd)

    def removexattr(self, name: bytes) -> None:
        os.removexattr(self._fd, name)
