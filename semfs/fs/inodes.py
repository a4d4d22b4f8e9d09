"""The inode table: FUSE inode numbers for the store's files and the names they go by.

An inode is identified in the store by (st_dev, st_ino), so hard links share one FUSE
inode, and it is known by its links: (parent inode, name) pairs. A path is rebuilt by
walking the links up to the root, so renaming a directory moves its whole subtree at
once.

A file on the store's own device gets its backing st_ino as its number: `ls -i` through
the mount shows what the store shows, and numbers stay the same when the kernel forgets
an inode and looks it up again, and across remounts (backup tools and `find -inum` rely
on that). Other numbers (a file on another device, a backing st_ino recycled while the
old inode is still open, virtual entries) come from a counter far above any real inode
number. No number is given to two live inodes.

An inode lives while the kernel holds a lookup count on it or a handle is open, and is
dropped in `forget`, as FUSE requires. Only the trio thread touches this table.
"""

from __future__ import annotations

import errno
import itertools
import os
from dataclasses import dataclass, field

ROOT_INODE = 1
ALLOCATED_BASE = 1 << 56  # allocated numbers start here, above real inode numbers

Link = tuple[int, bytes]  # (parent inode, name)
BackingKey = tuple[int, int]  # (st_dev, st_ino)


@dataclass
class Inode:
    number: int
    key: BackingKey | None  # None once the backing file is gone for good
    links: dict[Link, None] = field(default_factory=dict)  # ordered set; newest last
    lookups: int = 0
    open_handles: int = 0
    # (size, mtime_ns) last told to the kernel, for regular files: see Passthrough.stale_links
    reported: tuple[int, int] | None = None


class InodeTable:
    def __init__(self, root_key: BackingKey) -> None:
        self._root_device = root_key[0]
        self._numbers = itertools.count(ALLOCATED_BASE)
        root = Inode(ROOT_INODE, root_key, lookups=1)  # the kernel never forgets the root
        self._inodes: dict[int, Inode] = {ROOT_INODE: root}
        self._by_key: dict[BackingKey, int] = {root_key: ROOT_INODE}
        self._by_link: dict[Link, int] = {}

    def __len__(self) -> int:
        return len(self._inodes)

    def allocate(self) -> int:
        """A fresh inode number, e.g. for a virtual view's entries."""
        return next(self._numbers)

    def get(self, number: int) -> Inode:
        try:
            return self._inodes[number]
        except KeyError:
            raise OSError(errno.ESTALE, f"unknown inode {number}") from None

    def find(self, number: int) -> Inode | None:
        return self._inodes.get(number)

    def known(self, number: int) -> bool:
        return number in self._inodes

    def path(self, number: int) -> bytes:
        """The store-relative path of an inode (b"" for the root), via its newest link."""
        parts: list[bytes] = []
        while number != ROOT_INODE:
            inode = self.get(number)
            if not inode.links:
                raise OSError(errno.ENOENT, f"inode {number} has no name left")
            number, name = next(reversed(inode.links))
            parts.append(name)
        return b"/".join(reversed(parts))

    def paths(self, number: int) -> list[bytes]:
        """Every known path of an inode (hard links have several), newest last."""
        return [self.child_path(parent, name) for parent, name in self.get(number).links]

    def child_path(self, parent: int, name: bytes) -> bytes:
        parent_path = self.path(parent)
        return parent_path + b"/" + name if parent_path else name

    def remember(self, parent: int, name: bytes, info: os.stat_result) -> Inode:
        """The inode for (parent, name), which the store says is `info`; adds the link."""
        key = (info.st_dev, info.st_ino)
        link = (parent, name)
        previous = self._by_link.get(link)
        number = self._by_key.get(key)
        if previous is not None and previous != number:
            self._drop_link(link)  # the name now refers to something else
        if number is None:
            number = self._number_for(key)
            self._inodes[number] = Inode(number, key)
            self._by_key[key] = number
        inode = self._inodes[number]
        inode.links.pop(link, None)
        inode.links[link] = None
        self._by_link[link] = number
        return inode

    def _number_for(self, key: BackingKey) -> int:
        device, backing_inode = key
        if (
            device == self._root_device
            and ROOT_INODE < backing_inode < ALLOCATED_BASE
            and backing_inode not in self._inodes
        ):
            return backing_inode
        return self.allocate()

    def lookup_link(self, parent: int, name: bytes) -> int | None:
        return self._by_link.get((parent, name))

    def unlinked(self, parent: int, name: bytes, was_last_link: bool) -> None:
        """The name (parent, name) was removed from the store."""
        number = self._by_link.get((parent, name))
        self._drop_link((parent, name))
        if number is not None and was_last_link:
            self._retire_key(self._inodes[number])
        if number is not None:
            self._drop_if_unused(number)

    def renamed(self, old: Link, new: Link, replaced_last_link: bool) -> None:
        """(old) was renamed to (new), replacing whatever (new) named."""
        self.unlinked(*new, was_last_link=replaced_last_link)
        number = self._by_link.pop(old, None)
        if number is None:
            return
        inode = self._inodes[number]
        inode.links.pop(old, None)
        inode.links[new] = None
        self._by_link[new] = number

    def exchanged(self, first: Link, second: Link) -> None:
        a, b = self._by_link.pop(first, None), self._by_link.pop(second, None)
        for number, old, new in ((a, first, second), (b, second, first)):
            if number is not None:
                inode = self._inodes[number]
                inode.links.pop(old, None)
                inode.links[new] = None
                self._by_link[new] = number

    def increment(self, number: int, count: int = 1) -> None:
        self.get(number).lookups += count

    def forget(self, number: int, count: int) -> None:
        inode = self._inodes.get(number)
        if inode is None or number == ROOT_INODE:
            return
        inode.lookups = max(0, inode.lookups - count)
        self._drop_if_unused(number)

    def opened(self, number: int) -> None:
        self.get(number).open_handles += 1

    def closed(self, number: int) -> None:
        inode = self._inodes.get(number)
        if inode is not None:
            inode.open_handles -= 1
            self._drop_if_unused(number)

    def _drop_if_unused(self, number: int) -> None:
        inode = self._inodes[number]
        if inode.lookups > 0 or inode.open_handles > 0 or number == ROOT_INODE:
            return
        for link in list(inode.links):
            self._drop_link(link)
        self._retire_key(inode)
        del self._inodes[number]

    def _drop_link(self, link: Link) -> None:
        number = self._by_link.pop(link, None)
        if number is not None:
            self._inodes[number].links.pop(link, None)

    def _retire_key(self, inode: Inode) -> None:
        # The backing (st_dev, st_ino) may be reused by a new file: it must get a new inode.
        if inode.key is not None and self._by_key.get(inode.key) == inode.number:
            del self._by_key[inode.key]
        inode.key = None
