"""Virtual views: directory trees that appear in the mount's root beside the store's own
files (`search/`).

A view owns the inode numbers it hands out (allocated from the shared `InodeTable`, so
they never collide with real files), answers lookups, attributes and listings for them,
and is told when the kernel forgets them. A view's name hides a real entry of the same
name in the store's root, which stays reachable in the store itself.
"""

from __future__ import annotations

import errno
from abc import ABC, abstractmethod
from collections.abc import Sequence

import pyfuse3

from semfs.fs.access import Reach


class VirtualView(ABC):
    """What the FUSE adapter asks of a view. Views are read-only unless they override
    `mkdir`/`rmdir` (search/ saves queries that way) or `open` (for reading)."""

    name: bytes  # the view's directory name in the mount's root
    root_inode: int

    @abstractmethod
    def owns(self, inode: int) -> bool: ...

    @abstractmethod
    async def lookup(self, parent: int, name: bytes, pid: int) -> pyfuse3.EntryAttributes:
        """Attributes of `name` in view directory `parent` (asked by thread `pid`); counts
        one kernel lookup. Raises FileNotFoundError for a name that is not there (a
        cached negative entry), or returns a negative entry (st_ino 0) of its own."""

    @abstractmethod
    async def getattr(self, inode: int) -> pyfuse3.EntryAttributes: ...

    @abstractmethod
    async def listing(self, inode: int) -> Sequence[tuple[bytes, pyfuse3.EntryAttributes]]:
        """The entries of view directory `inode`, for one readdir pass."""

    @abstractmethod
    def counted(self, inode: int) -> None:
        """The kernel took one lookup on an entry returned by `list`."""

    @abstractmethod
    def forget(self, inode: int, count: int) -> None: ...

    def release_listing(  # noqa: B027 - optional hook: most views keep nothing alive
        self, entries: Sequence[tuple[bytes, pyfuse3.EntryAttributes]]
    ) -> None:
        """A listing returned by `listing` is done with (its directory handle closed, or
        read again from the start): entries it kept alive may go."""

    def real_path(self, inode: int) -> bytes | None:
        """The store path of the file entry `inode` shows, if it shows one: requests on
        it are then allowed only to callers who could read it by that path (access.py)."""
        return None

    async def mkdir(self, parent: int, name: bytes, reach: Reach) -> pyfuse3.EntryAttributes:
        """`reach`: the caller's, for a view that makes a folder of a stored file."""
        raise pyfuse3.FUSEError(errno.EROFS)

    async def rmdir(self, parent: int, name: bytes) -> None:
        raise pyfuse3.FUSEError(errno.EROFS)

    async def open(self, inode: int, flags: int) -> int:
        """A read-only descriptor of the entry's content."""
        raise pyfuse3.FUSEError(errno.EROFS)

    async def create(
        self, parent: int, name: bytes, flags: int
    ) -> tuple[int, pyfuse3.EntryAttributes]:
        """A file written into the view (similar/ takes example images): its descriptor,
        which is also its file handle, and its attributes."""
        raise pyfuse3.FUSEError(errno.EROFS)

    async def write(self, fh: int, offset: int, data: bytes) -> int:
        raise pyfuse3.FUSEError(errno.EROFS)

    async def truncate(self, inode: int, size: int | None) -> pyfuse3.EntryAttributes:
        """A setattr on a view's entry: `size` to truncate a file being written."""
        raise pyfuse3.FUSEError(errno.EROFS)

    async def flush(self, fh: int) -> None:  # noqa: B027 - optional hook
        """A descriptor of a created file was closed (its error reaches close())."""

    async def release(self, fh: int) -> None:  # noqa: B027 - optional hook
        """The last descriptor of a created file was closed."""

    def getxattr(self, inode: int, name: bytes) -> bytes:
        raise pyfuse3.FUSEError(pyfuse3.ENOATTR)

    def listxattr(self, inode: int) -> list[bytes]:
        return []


class ViewRegistry:
    def __init__(self, views: Sequence[VirtualView] = ()) -> None:
        self._by_name = {view.name: view for view in views}

    def __bool__(self) -> bool:
        return bool(self._by_name)

    @property
    def names(self) -> frozenset[bytes]:
        return frozenset(self._by_name)

    def at_root(self, name: bytes) -> VirtualView | None:
        return self._by_name.get(name)

    def owner(self, inode: int) -> VirtualView | None:
        for view in self._by_name.values():
            if view.owns(inode):
                return view
        return None

    def all(self) -> list[VirtualView]:
        return list(self._by_name.values())
