"""A view that shows a QueryTree: the calls every result view answers the same way.

SearchView, TagsView and SimilarView each hold their own QueryTree (`self.tree`) and
answer lookups and folder-making their own way; what is left is passed to the tree
here, once, rather than in three copies of the same one-line methods.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyfuse3

from semfs.fs.views.query_tree import QueryTree
from semfs.fs.views.registry import VirtualView


class TreeView(VirtualView):
    tree: QueryTree

    def owns(self, inode: int) -> bool:
        return self.tree.owns(inode)

    async def getattr(self, inode: int) -> pyfuse3.EntryAttributes:
        return self.tree.getattr(inode)

    async def listing(self, inode: int) -> list[tuple[bytes, pyfuse3.EntryAttributes]]:
        return await self.tree.listing(inode)

    def release_listing(self, entries: Sequence[tuple[bytes, pyfuse3.EntryAttributes]]) -> None:
        self.tree.release_listing(entries)

    def counted(self, inode: int) -> None:
        self.tree.counted(inode)

    def forget(self, inode: int, count: int) -> None:
        self.tree.forget(inode, count)

    def real_path(self, inode: int) -> bytes | None:
        return self.tree.real_path(inode)

    async def open(self, inode: int, flags: int) -> int:
        return self.tree.open(inode, flags)

    def getxattr(self, inode: int, name: bytes) -> bytes:
        return self.tree.getxattr(inode, name)

    def listxattr(self, inode: int) -> list[bytes]:
        return self.tree.listxattr(inode)

    def index_changed(self) -> None:
        self.tree.index_changed()

    async def watch(self) -> None:
        await self.tree.watch()
