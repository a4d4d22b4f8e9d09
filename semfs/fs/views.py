"""Virtual views: read-only directory trees that appear in the mount's root beside the
store's own files (the next stage adds `search/`).

A view owns the inode numbers it hands out (allocated from the shared `InodeTable`, so
they never collide with real files), answers lookups, attributes and listings for them,
and is told when the kernel forgets them. A view's name hides a real entry of the same
name in the store's root, which stays reachable in the store itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import pyfuse3


class VirtualView(Protocol):
    @property
    def name(self) -> bytes:
        """The view's directory name in the mount's root."""
        ...

    @property
    def root_inode(self) -> int: ...

    def owns(self, inode: int) -> bool: ...

    async def lookup(self, parent: int, name: bytes) -> pyfuse3.EntryAttributes:
        """Attributes of `name` in view directory `parent`; counts one kernel lookup."""
        ...

    async def getattr(self, inode: int) -> pyfuse3.EntryAttributes: ...

    async def list(self, inode: int) -> Sequence[tuple[bytes, pyfuse3.EntryAttributes]]:
        """The entries of view directory `inode`, for one readdir pass."""
        ...

    def counted(self, inode: int) -> None:
        """The kernel took one lookup on an entry returned by `list`."""
        ...

    def forget(self, inode: int, count: int) -> None: ...


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
