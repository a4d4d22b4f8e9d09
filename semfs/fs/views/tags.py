"""The tags view: `tags/` lists the keywords of the indexed images (each folder's size is
how many images have it), `tags/<kw>/` the images with that keyword, newest first, and
`tags/<a>/<b>/` those with both (any depth). Keywords come from the captions (YAKE,
offline: semfs/ml/keywords.py).

It is the search view with another source of results: a keyword folder is a "query"
whose results come from the catalog instead of the index, so entries, lookups, reads,
xattrs and the refresh when the index changes work the same way.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import time

import pyfuse3
import trio

from semfs.fs.attributes import negative_entry
from semfs.fs.inodes import ROOT_INODE, InodeTable
from semfs.fs.views.search import SearchView, _Query, is_probe
from semfs.search.engine import Engine
from semfs.search.searcher import Hit
from semfs.store.backing import BackingStore

log = logging.getLogger(__name__)

MAX_KEYWORDS = 10_000  # folders listed in tags/, most common first
MAX_IMAGES = 10_000  # images listed in one keyword folder, newest first
RECOUNT_EVERY = 2.0  # seconds: keyword counts take 0.1 s for 200 k images
SEPARATOR = "/"  # between the keywords of a nested folder's text: never in a keyword


class TagsView(SearchView):
    def __init__(
        self, engine: Engine, inodes: InodeTable, store: BackingStore, entry_timeout: float
    ) -> None:
        super().__init__(engine, inodes, store, entry_timeout)
        self.name = os.fsencode(self._settings.tags_dir_name)
        self._counts: dict[bytes, int] = {}
        self._counts_version = -2
        self._counted_at = -math.inf

    def _load_saved(self) -> None:
        pass  # keyword folders come from the catalog, none are saved

    async def _keyword_counts(self) -> dict[bytes, int]:
        """Keyword -> images, recounted when the index changed; each keyword has a
        folder that lives as long as the keyword does."""
        version = self._engine_version()
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
                self._query(name, os.fsdecode(name)).saved = True
            for name, query in list(self._queries.items()):
                if query.saved and name not in self._counts:
                    query.saved = False  # the keyword went: its folder may go too
                    self._drop_query_if_unused(query)
        return self._counts

    async def lookup(self, parent: int, name: bytes, pid: int) -> pyfuse3.EntryAttributes:
        if parent == ROOT_INODE:
            return await super().lookup(parent, name, pid)
        parent_query = self._query_by_inode.get(parent)
        if is_probe(name) and (parent_query is None or name not in parent_query.by_name):
            return negative_entry(self._entry_timeout)
        counts = await self._keyword_counts()
        if parent == self.root_inode:
            if name not in counts:
                raise FileNotFoundError(errno.ENOENT, "no image has this keyword")
            query = self._queries[name]
        elif parent_query is not None:
            await self._refresh(parent_query)
            if name in parent_query.by_name:
                return await super().lookup(parent, name, pid)
            if name not in counts or os.fsdecode(name) in parent_query.text.split(SEPARATOR):
                raise FileNotFoundError(errno.ENOENT, "neither an image here nor a keyword")
            key = parent_query.name + b"/" + name
            query = self._query(key, parent_query.text + SEPARATOR + os.fsdecode(name))
        else:
            raise OSError(errno.ENOTDIR, "not a directory")
        query.lookups += 1
        return self._query_attributes(query)

    async def listing(self, inode: int) -> list[tuple[bytes, pyfuse3.EntryAttributes]]:
        if inode != self.root_inode:
            return await super().listing(inode)
        counts = await self._keyword_counts()
        return [(name, self._query_attributes(self._queries[name])) for name in counts]

    def _query_attributes(self, query: _Query) -> pyfuse3.EntryAttributes:
        attr = super()._query_attributes(query)
        attr.entry_timeout = self._entry_timeout  # cacheable: there is no mkdir here
        attr.st_size = self._counts.get(query.name, len(query.results))
        return attr

    def _search(self, text: str) -> tuple[list[Hit], int]:
        space = self._engine.wait_ready()
        version = space.searcher.version
        started = time.perf_counter()
        keywords = text.split(SEPARATOR)
        stored = self._catalog.reads.with_keywords(keywords, space.model, MAX_IMAGES)
        log.info("tags %s: %d images in %.1f ms", keywords, len(stored),
                 (time.perf_counter() - started) * 1000)  # fmt: skip
        return [Hit.of(hit, 0.0) for hit in stored], version

    async def mkdir(self, parent: int, name: bytes) -> pyfuse3.EntryAttributes:
        raise OSError(errno.EROFS, "tags come from the captions")

    async def rmdir(self, parent: int, name: bytes) -> None:
        raise OSError(errno.EROFS, "tags come from the captions")
