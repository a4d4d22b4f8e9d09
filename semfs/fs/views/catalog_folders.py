"""What tags/ and places/ share: a read-only view of folders named after what the
catalog counts (keywords; countries and cities), each folder's size how many images it
holds, its results the images the catalog lists for it, newest first.

The folders and result entries are a QueryTree (query_tree.py), as search/'s are: a
folder is a "query" whose results come from the catalog instead of the index
(CatalogSearch), so entries, lookups, reads, xattrs and the refresh when the index
changes work the same way. The counts are read again when the index's version moves, at
most every RECOUNT_EVERY seconds while images stream in; a counted folder is saved
(listed and kept) as long as its count lasts.

A view built on CatalogFolderView says what to count (`_read_counts`), which folders
the counts make (`_take_counts`), which of them its root lists (`_top_names`) and what
lies inside a folder (`_look_up_below`, `_listing_below`).

Only the trio thread touches this state; counts and searches run in worker threads.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Collection

import pyfuse3
import trio

from semfs.catalog.records import StoredHit
from semfs.fs.access import Reach
from semfs.fs.attributes import negative_entry
from semfs.fs.inodes import ROOT_INODE, InodeTable
from semfs.fs.views.names import is_probe
from semfs.fs.views.query_tree import QueryFolder, QueryTree
from semfs.fs.views.search import TextSearch
from semfs.fs.views.tree_view import TreeView
from semfs.search.engine import Engine
from semfs.search.searcher import Hit
from semfs.store.backing import BackingStore

log = logging.getLogger(__name__)

MAX_IMAGES = 10_000  # images listed in one folder, newest first
RECOUNT_EVERY = 2.0  # seconds: keyword counts take 0.1 s for 200 k images


class CatalogSearch(TextSearch, ABC):
    """A catalog folder's results: the images the catalog lists for the folder's text
    (the text index's version says when they may have changed)."""

    kind: str  # the view's name in the log

    def search(self, text: str) -> tuple[list[Hit], int]:
        space = self._engine.wait_ready()
        version = space.searcher.version
        started = time.perf_counter()
        stored = self._stored(text, space.model)
        log.info("%s %s: %d images in %.1f ms", self.kind, text, len(stored),
                 (time.perf_counter() - started) * 1000)  # fmt: skip
        return [Hit.of(hit, 0.0) for hit in stored], version

    @abstractmethod
    def _stored(self, text: str, model: str) -> list[StoredHit]:
        """The indexed images of folder text `text`, newest first (in a worker thread)."""


class CatalogFolderView(TreeView):
    refusal: str  # why no folder can be made or removed here
    not_found: str  # why a name in the view's root is not there

    def __init__(
        self,
        name: str,
        engine: Engine,
        inodes: InodeTable,
        store: BackingStore,
        entry_timeout: float,
        source: CatalogSearch,
    ) -> None:
        self.name = os.fsencode(name)
        self._catalog = engine.catalog
        self._entry_timeout = entry_timeout
        self._limiter = trio.CapacityLimiter(4)
        self._source = source
        self.tree = QueryTree(
            inodes, store, entry_timeout, self._source, self._limiter,
            engine.settings.allow_other, self._describe_folder,
        )  # fmt: skip
        self.root_inode = self.tree.root_inode
        self._counts: dict[bytes, int] = {}  # folder key -> images it holds
        self._counts_version = -2
        self._counted_at = -math.inf

    @abstractmethod
    def _read_counts(self) -> list[tuple[str, int]]:
        """What the catalog counts for this view, most first (in a worker thread)."""

    @abstractmethod
    def _take_counts(self, counted: list[tuple[str, int]]) -> dict[bytes, int]:
        """Folder key -> images, from what `_read_counts` read."""

    @abstractmethod
    def _top_names(self) -> Collection[bytes]:
        """The folders the view's root lists, as last counted."""

    @abstractmethod
    async def _look_up_below(
        self, parent_folder: QueryFolder, name: bytes
    ) -> pyfuse3.EntryAttributes:
        """Attributes of `name` in a folder of the view, just after a recount."""

    async def _listing_below(self, inode: int) -> list[tuple[bytes, pyfuse3.EntryAttributes]]:
        """The entries of a folder of the view: its results."""
        return await self.tree.listing(inode)

    async def _recount(self) -> None:
        """Count again if the index changed; each counted folder is saved, and lives as
        long as its count does."""
        version = self._source.version()
        stale = version != self._counts_version or version < 0
        # While images stream in, count again at most every RECOUNT_EVERY seconds.
        if not stale or time.monotonic() - self._counted_at < RECOUNT_EVERY:
            return
        self._counted_at = time.monotonic()
        counted = await trio.to_thread.run_sync(self._read_counts, limiter=self._limiter)
        self._counts, self._counts_version = self._take_counts(counted), version
        for key in self._counts:
            self.tree.folder(key, os.fsdecode(key)).saved = True
        for key, folder in list(self.tree.folders.items()):
            if folder.saved and key not in self._counts:
                folder.saved = False  # its count went: the folder may go too
                self.tree.drop_folder_if_unused(folder)

    async def lookup(self, parent: int, name: bytes, pid: int) -> pyfuse3.EntryAttributes:
        tree = self.tree
        if parent == ROOT_INODE:
            return tree.look_up_root()
        parent_folder = tree.folder_at(parent)
        if is_probe(name) and (parent_folder is None or name not in parent_folder.by_name):
            return negative_entry(self._entry_timeout)
        await self._recount()
        if parent == self.root_inode:
            if name not in self._top_names():
                raise FileNotFoundError(errno.ENOENT, self.not_found)
            return tree.look_up_folder(tree.folders[name])
        if parent_folder is None:
            raise OSError(errno.ENOTDIR, "not a directory")
        return await self._look_up_below(parent_folder, name)

    async def listing(self, inode: int) -> list[tuple[bytes, pyfuse3.EntryAttributes]]:
        if inode != self.root_inode:
            return await self._listing_below(inode)
        await self._recount()
        tree = self.tree
        return [(name, tree.folder_attributes(tree.folders[name])) for name in self._top_names()]

    def _describe_folder(self, folder: QueryFolder, attr: pyfuse3.EntryAttributes) -> None:
        attr.entry_timeout = self._entry_timeout  # cacheable: there is no mkdir here
        attr.st_size = self._counts.get(folder.name, len(folder.results))

    async def mkdir(self, parent: int, name: bytes, reach: Reach) -> pyfuse3.EntryAttributes:
        raise OSError(errno.EROFS, self.refusal)

    async def rmdir(self, parent: int, name: bytes) -> None:
        raise OSError(errno.EROFS, self.refusal)
