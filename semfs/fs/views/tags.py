"""The tags view: `tags/` lists the keywords of the indexed images (each folder's size is
how many images have it), `tags/<kw>/` the images with that keyword, newest first, and
`tags/<a>/<b>/` those with both (any depth). Keywords are the classifier's labels and
their kinds (semfs/ml/label_tags.py) and YAKE's keywords of what people wrote
(semfs/ml/keywords.py), as ingest/descriptions.py takes them.

Its folders and result entries are a QueryTree (query_tree.py), as search/'s are: a
keyword folder is a "query" whose results come from the catalog instead of the index,
so entries, lookups, reads, xattrs and the refresh when the index changes work the same
way. Its results keep their plain names (`cat.png`) whatever the result_names setting:
rank prefixes are asked for where a listing is ranked by score, and a keyword folder
lists its images newest first, never by score.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import time

import pyfuse3
import trio

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

MAX_KEYWORDS = 10_000  # folders listed in tags/, most common first
MAX_IMAGES = 10_000  # images listed in one keyword folder, newest first
RECOUNT_EVERY = 2.0  # seconds: keyword counts take 0.1 s for 200 k images
SEPARATOR = "/"  # between the keywords of a nested folder's text: never in a keyword


class KeywordSearch(TextSearch):
    """The results of tags/: the images that have every keyword of a folder's text
    (the catalog answers; the text index's version says when they may have changed)."""

    def search(self, text: str) -> tuple[list[Hit], int]:
        space = self._engine.wait_ready()
        version = space.searcher.version
        started = time.perf_counter()
        keywords = text.split(SEPARATOR)
        stored = self._engine.catalog.reads.with_keywords(keywords, space.model, MAX_IMAGES)
        log.info("tags %s: %d images in %.1f ms", keywords, len(stored),
                 (time.perf_counter() - started) * 1000)  # fmt: skip
        return [Hit.of(hit, 0.0) for hit in stored], version


class TagsView(TreeView):
    def __init__(
        self, engine: Engine, inodes: InodeTable, store: BackingStore, entry_timeout: float
    ) -> None:
        self.name = os.fsencode(engine.settings.tags_dir_name)
        self._catalog = engine.catalog
        self._entry_timeout = entry_timeout
        self._limiter = trio.CapacityLimiter(4)
        self._source = KeywordSearch(engine)
        self.tree = QueryTree(
            inodes, store, entry_timeout, self._source, self._limiter,
            engine.settings.allow_other, self._describe_folder,
        )  # fmt: skip
        self.root_inode = self.tree.root_inode
        self._counts: dict[bytes, int] = {}
        self._counts_version = -2
        self._counted_at = -math.inf

    async def _keyword_counts(self) -> dict[bytes, int]:
        """Keyword -> images, recounted when the index changed; each keyword has a
        folder that lives as long as the keyword does."""
        version = self._source.version()
        stale = version != self._counts_version or version < 0
        # While images stream in, count again at most every RECOUNT_EVERY seconds.
        if stale and time.monotonic() - self._counted_at >= RECOUNT_EVERY:
            self._counted_at = time.monotonic()
            counted = await trio.to_thread.run_sync(
                self._catalog.reads.keyword_counts, MAX_KEYWORDS, limiter=self._limiter
            )
            self._counts = {
                os.fsencode(word): count for word, count in counted if SEPARATOR not in word
            }
            self._counts_version = version
            for name in self._counts:
                self.tree.folder(name, os.fsdecode(name)).saved = True
            for name, folder in list(self.tree.folders.items()):
                if folder.saved and name not in self._counts:
                    folder.saved = False  # the keyword went: its folder may go too
                    self.tree.drop_folder_if_unused(folder)
        return self._counts

    async def lookup(self, parent: int, name: bytes, pid: int) -> pyfuse3.EntryAttributes:
        tree = self.tree
        if parent == ROOT_INODE:
            return tree.look_up_root()
        parent_folder = tree.folder_at(parent)
        if is_probe(name) and (parent_folder is None or name not in parent_folder.by_name):
            return negative_entry(self._entry_timeout)
        counts = await self._keyword_counts()
        if parent == self.root_inode:
            if name not in counts:
                raise FileNotFoundError(errno.ENOENT, "no image has this keyword")
            folder = tree.folders[name]
        elif parent_folder is not None:
            await tree.refresh(parent_folder)
            if name in parent_folder.by_name:
                return await tree.look_up_result(parent_folder, name)
            if name not in counts or os.fsdecode(name) in parent_folder.text.split(SEPARATOR):
                raise FileNotFoundError(errno.ENOENT, "neither an image here nor a keyword")
            key = parent_folder.name + b"/" + name
            folder = tree.folder(key, parent_folder.text + SEPARATOR + os.fsdecode(name))
        else:
            raise OSError(errno.ENOTDIR, "not a directory")
        return tree.look_up_folder(folder)

    async def listing(self, inode: int) -> list[tuple[bytes, pyfuse3.EntryAttributes]]:
        if inode != self.root_inode:
            return await self.tree.listing(inode)
        counts = await self._keyword_counts()
        return [(name, self.tree.folder_attributes(self.tree.folders[name])) for name in counts]

    def _describe_folder(self, folder: QueryFolder, attr: pyfuse3.EntryAttributes) -> None:
        attr.entry_timeout = self._entry_timeout  # cacheable: there is no mkdir here
        attr.st_size = self._counts.get(folder.name, len(folder.results))

    async def mkdir(self, parent: int, name: bytes, reach: Reach) -> pyfuse3.EntryAttributes:
        raise OSError(errno.EROFS, "tags come from the captions")

    async def rmdir(self, parent: int, name: bytes) -> None:
        raise OSError(errno.EROFS, "tags come from the captions")
