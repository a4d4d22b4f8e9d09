"""The `search/` view: `search/<query>/` lists the stored images whose captions mean
the query, best first, each named behind its rank (`01 coffee.png`; plain `coffee.png`
with the result_names setting "plain").

Every name looked up under `search/` is a query, except dot-names and the names file
managers probe for (names.py), which are absent. A lookup is cheap; the search runs when
the directory is read or an entry in it is looked up, and its answer is kept until the
index changes. `mkdir search/<query>` saves a query (it is listed in `search/` and
survives remounts); `rmdir` removes it. The folders, their result entries and the
kernel's counts of them are the view's QueryTree (query_tree.py).

Only the trio thread touches this state; searches run in worker threads.
"""

from __future__ import annotations

import errno
import logging
import os
import time

import pyfuse3
import trio

from semfs.fs.access import Reach
from semfs.fs.attributes import negative_entry
from semfs.fs.inodes import ROOT_INODE, InodeTable
from semfs.fs.views.names import is_probe, query_text
from semfs.fs.views.query_tree import QueryTree
from semfs.fs.views.tree_view import TreeView
from semfs.search.engine import Engine, NotReady
from semfs.search.query import parse_query
from semfs.search.searcher import Hit
from semfs.store.backing import BackingStore
from semfs.store.syscalls import caller_is_making

log = logging.getLogger(__name__)


class TextSearch:
    """The results of search/: the query text searched in the captions' space."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def version(self) -> int:
        try:
            return self._engine.wait_ready(timeout=0).searcher.version
        except NotReady:
            return -1

    def search(self, text: str) -> tuple[list[Hit], int]:
        space = self._engine.wait_ready()
        version = space.searcher.version  # before searching: a change during it triggers another
        started = time.perf_counter()
        query = parse_query(text)  # valid: query_text checked it
        with self._engine.foreground.searching():  # ingest's threads step aside meanwhile
            hits = space.searcher.search_query(
                query, self._engine.settings.top_k, space.max_distance
            )
        log.info("search %r: %d results in %.1f ms",
                 text, len(hits), (time.perf_counter() - started) * 1000)  # fmt: skip
        return hits, version


class SearchView(TreeView):
    def __init__(
        self,
        engine: Engine,
        inodes: InodeTable,
        store: BackingStore,
        entry_timeout: float,
    ) -> None:
        self.name = os.fsencode(engine.settings.search_dir_name)
        self._engine = engine
        self._catalog = engine.catalog
        self._entry_timeout = entry_timeout
        self._limiter = trio.CapacityLimiter(4)
        self._top_k = engine.settings.top_k
        ranked = engine.settings.result_names == "ranked"
        self.tree = QueryTree(
            inodes, store, entry_timeout, TextSearch(engine), self._limiter,
            engine.settings.allow_other, rank_limit=self._limit if ranked else None,
        )  # fmt: skip
        self.root_inode = self.tree.root_inode
        for saved in self._catalog.reads.saved_queries():
            try:
                self.tree.folder(saved, query_text(saved)).saved = True
            except OSError:
                log.warning("ignoring saved query %r: not a valid query name", saved)

    def _limit(self, text: str) -> int:
        """The most results a query lists: its own `@k=`, else top_k."""
        return parse_query(text).k or self._top_k

    async def lookup(self, parent: int, name: bytes, pid: int) -> pyfuse3.EntryAttributes:
        tree = self.tree
        if parent == ROOT_INODE:
            return tree.look_up_root()
        if parent != self.root_inode:
            return await tree.look_up_in_folder(parent, name)
        if is_probe(name):
            return negative_entry(self._entry_timeout)  # kept by the kernel: never a search
        text = query_text(name)
        self._engine.foreground.expect()  # a listing (a search) most often follows
        if not tree.is_saved(name) and caller_is_making(pid, name):
            # Absent for this caller only, and not cached: the kernel goes on to mkdir,
            # which saves the query, or to symlink, mknod, link, rename or create, which
            # a view refuses (EROFS) rather than the kernel's EEXIST for a name unlisted.
            return negative_entry(0)
        return tree.look_up_folder(tree.folder(name, text))

    # --- saved queries -------------------------------------------------------------------

    async def mkdir(self, parent: int, name: bytes, reach: Reach) -> pyfuse3.EntryAttributes:
        if parent != self.root_inode:
            raise OSError(errno.EROFS, "only search/ holds saved queries")
        try:
            text = query_text(name)
        except FileNotFoundError:  # a dot-name or a probe cannot be a saved query
            raise OSError(errno.EINVAL, "not a query name") from None
        if self.tree.is_saved(name):
            raise FileExistsError(errno.EEXIST, "query already saved")
        await trio.to_thread.run_sync(self._catalog.reads.save_query, name, limiter=self._limiter)
        folder = self.tree.folder(name, text)
        folder.saved = True
        self.tree.root_changed()
        log.info("saved query %r", text)
        return self.tree.look_up_folder(folder)

    async def rmdir(self, parent: int, name: bytes) -> None:
        if parent != self.root_inode:
            raise OSError(errno.EROFS, "results cannot be removed here")
        folder = self.tree.folders.get(name)
        if folder is None or not folder.saved:
            query_text(name)  # a probe name is absent; any other query may be dropped
            return
        await trio.to_thread.run_sync(self._catalog.reads.remove_query, name, limiter=self._limiter)
        folder.saved = False
        self.tree.root_changed()
        log.info("removed saved query %r", folder.text)
        self.tree.drop_folder_if_unused(folder)
