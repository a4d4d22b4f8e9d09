"""The `search/` view: `search/<query>/` lists the stored images whose captions mean
the query, best first.

Every name looked up under `search/` is a query, except dot-names and the names file
managers probe for (`desktop.ini`, `folder.jpg`, ...), which are absent. A lookup is
cheap; the search runs when the directory is read or an entry in it is looked up, and
its answer is kept until the index changes. `mkdir search/<query>` saves a query (it is
listed in `search/` and survives remounts); `rmdir` removes it.

Result entries are read-only views of the stored images: each has its own stable inode
per (query, image) that reads the image's content, shows its size and times, and
carries `user.semfs.score`, `user.semfs.caption` and `user.semfs.path` (see
docs/architecture.md for why not the image's own inode).

Only the trio thread touches this state; searches run in worker threads.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyfuse3
import trio

from semfs.catalog.database import Catalog
from semfs.config import CAPTION_XATTR
from semfs.fs.attributes import entry_attributes, negative_entry
from semfs.fs.inodes import ROOT_INODE, InodeTable
from semfs.fs.views.registry import VirtualView
from semfs.ml.triplets import triplets
from semfs.search.engine import Engine, NotReady
from semfs.search.query import QuerySyntaxError, parse_query
from semfs.search.searcher import Hit
from semfs.store.backing import BackingStore
from semfs.store.syscalls import caller_is_making_a_directory

log = logging.getLogger(__name__)

NAME_MAX = 255
RESULT_TIMEOUT = 1.0  # kernel cache lifetime of result entries: results change often
# Names file managers and shells look up in any directory; never queries.
PROBE_NAMES = frozenset({
    b"desktop.ini", b"folder.jpg", b"folder.png", b"folder.gif", b"thumbs.db", b"autorun.inf",
    b"icon\r", b"albumart.jpg", b"albumartsmall.jpg", b"cover.jpg", b"cover.png",
    b"lost+found", b"__pycache__", b"node_modules",
})  # fmt: skip
XATTR_SCORE = b"user.semfs.score"
XATTR_DISTANCE = b"user.semfs.distance"
XATTR_CAPTION = CAPTION_XATTR
XATTR_PATH = b"user.semfs.path"
XATTR_TRIPLETS = b"user.semfs.triplets"  # JSON: [[subject, verb, object], ...]
_RESULT_XATTRS = [XATTR_SCORE, XATTR_DISTANCE, XATTR_CAPTION, XATTR_PATH, XATTR_TRIPLETS]


@dataclass
class _Result:
    inode: int
    name: bytes
    hit: Hit
    lookups: int = 0


@dataclass
class _Query:
    inode: int
    name: bytes
    text: str
    saved: bool = False
    lookups: int = 0
    changed_ns: int = field(default_factory=time.time_ns)
    version: int = -1  # of the index when `results` were computed
    results: list[_Result] = field(default_factory=list)
    by_name: dict[bytes, _Result] = field(default_factory=dict)
    inode_of_file: dict[int, _Result] = field(default_factory=dict)  # live entries, by file
    shown: list[int] = field(default_factory=list)  # file ids listed, in order
    lock: trio.Lock = field(default_factory=trio.Lock)


def is_probe(name: bytes) -> bool:
    """Hidden names and the files file managers look for in every folder (`.hidden`,
    `.directory`, `desktop.ini`, `folder.jpg`, ...): never queries nor results."""
    return name.startswith(b".") or name.lower() in PROBE_NAMES


def query_text(name: bytes) -> str:
    """The query a directory name asks for; FileNotFoundError if it is a probe, OSError
    EINVAL if it cannot be a query."""
    if len(name) > NAME_MAX:  # FUSE passes names up to 1024 bytes; a query is a file name
        raise OSError(errno.ENAMETOOLONG, f"a query name holds at most {NAME_MAX} bytes")
    if is_probe(name):
        raise FileNotFoundError(errno.ENOENT, "not a query")
    try:
        text = name.decode("utf-8")
    except UnicodeDecodeError:
        raise OSError(errno.EINVAL, "a query must be UTF-8 text") from None
    if not any(character.isalnum() for character in text):
        raise OSError(errno.EINVAL, "a query needs at least one letter or digit")
    text = " ".join(text.split())
    try:
        parse_query(text)
    except QuerySyntaxError as error:
        log.warning("query %r refused (EINVAL): %s", text, error)
        raise OSError(errno.EINVAL, str(error)) from None
    return text


def result_names(hits: list[Hit]) -> list[bytes]:
    """Each hit's basename; where several hits share one, all but the oldest file (lowest
    id) get a suffix from their id (`cat~42.png`), the same on every listing."""
    basenames = [os.path.basename(hit.path) for hit in hits]
    oldest: dict[bytes, int] = {}
    for basename, hit in zip(basenames, hits, strict=True):
        oldest[basename] = min(oldest.get(basename, hit.file_id), hit.file_id)
    names = []
    for basename, hit in zip(basenames, hits, strict=True):
        if oldest[basename] == hit.file_id:
            names.append(basename)
        else:
            stem, dot, extension = basename.rpartition(b".")
            if not stem:
                stem, dot, extension = extension, b"", b""
            names.append(b"%s~%d%s%s" % (stem, hit.file_id, dot, extension))
    return names


class SearchView(VirtualView):
    def __init__(
        self,
        engine: Engine,
        inodes: InodeTable,
        store: BackingStore,
        entry_timeout: float,
    ) -> None:
        self.name = os.fsencode(engine.settings.search_dir_name)
        self._engine = engine
        self._catalog: Catalog = engine.catalog
        self._settings = engine.settings
        self._inodes = inodes
        self._store = store
        self._entry_timeout = entry_timeout
        self._limiter = trio.CapacityLimiter(4)
        self.root_inode = inodes.allocate()
        self._root_lookups = 0
        self._root_changed_ns = time.time_ns()  # moves when a query is saved or removed
        self._queries: dict[bytes, _Query] = {}
        self._query_by_inode: dict[int, _Query] = {}
        self._result_by_inode: dict[int, tuple[_Query, _Result]] = {}
        # Results in listings still being read: readdir may reply with them later, and
        # the kernel must then find them, even if a newer search has dropped them.
        self._pinned: dict[int, int] = {}
        self._changed = trio.Event()
        self._stale_attributes: set[int] = set()  # query inodes whose mtime moved
        self._load_saved()

    def _load_saved(self) -> None:
        for saved in self._catalog.reads.saved_queries():
            try:
                self._query(saved, query_text(saved)).saved = True
            except OSError:
                log.warning("ignoring saved query %r: not a valid query name", saved)

    # --- the tree --------------------------------------------------------------------

    def owns(self, inode: int) -> bool:
        return (
            inode == self.root_inode
            or inode in self._query_by_inode
            or inode in self._result_by_inode
        )

    def _query(self, name: bytes, text: str) -> _Query:
        query = self._queries.get(name)
        if query is None:
            query = _Query(self._inodes.allocate(), name, text)
            self._queries[name] = query
            self._query_by_inode[query.inode] = query
        return query

    async def lookup(self, parent: int, name: bytes, pid: int) -> pyfuse3.EntryAttributes:
        if parent == ROOT_INODE:
            self._root_lookups += 1
            return self._directory_attributes(self.root_inode, self._root_changed_ns)
        parent_query = self._query_by_inode.get(parent)
        if is_probe(name) and (parent_query is None or name not in parent_query.by_name):
            # A negative entry the kernel keeps, so a file manager's probes of every
            # folder come here once and never cost a search. (A hidden image can still
            # be a result.)
            return negative_entry(self._entry_timeout)
        if parent == self.root_inode:
            text = query_text(name)
            known = self._queries.get(name)
            if not (known and known.saved) and caller_is_making_a_directory(pid):
                # Absent for this caller only, and not cached: the kernel goes on to mkdir.
                return negative_entry(0)
            query = self._query(name, text)
            query.lookups += 1
            return self._query_attributes(query)
        if parent_query is None:
            raise OSError(errno.ENOTDIR, "not a directory")
        await self._refresh(parent_query)
        result = parent_query.by_name.get(name)
        if result is None:
            raise FileNotFoundError(errno.ENOENT, "not among the results")
        attributes = self._result_attributes(result)
        result.lookups += 1
        return attributes

    async def getattr(self, inode: int) -> pyfuse3.EntryAttributes:
        if inode == self.root_inode:
            return self._directory_attributes(inode, self._root_changed_ns)
        if inode in self._query_by_inode:
            return self._query_attributes(self._query_by_inode[inode])
        _, result = self._result_by_inode[inode]
        return self._result_attributes(result)

    async def listing(self, inode: int) -> list[tuple[bytes, pyfuse3.EntryAttributes]]:
        if inode == self.root_inode:
            saved = [query for query in self._queries.values() if query.saved]
            return [(query.name, self._query_attributes(query)) for query in saved]
        query = self._query_by_inode[inode]
        await self._refresh(query)
        entries = []
        for result in query.results:
            try:
                entries.append((result.name, self._result_attributes(result)))
            except FileNotFoundError:
                continue  # removed since the search; the next one will not list it
            self._pinned[result.inode] = self._pinned.get(result.inode, 0) + 1
        return entries

    def release_listing(self, entries: Sequence[tuple[bytes, pyfuse3.EntryAttributes]]) -> None:
        for _, attr in entries:
            count = self._pinned.get(attr.st_ino, 0) - 1
            if count > 0:
                self._pinned[attr.st_ino] = count
                continue
            self._pinned.pop(attr.st_ino, None)
            entry = self._result_by_inode.get(attr.st_ino)
            if entry is not None:
                self._drop_result_if_unused(*entry)

    def counted(self, inode: int) -> None:
        if inode in self._query_by_inode:
            self._query_by_inode[inode].lookups += 1
        elif inode in self._result_by_inode:
            self._result_by_inode[inode][1].lookups += 1
        elif inode == self.root_inode:
            self._root_lookups += 1

    def forget(self, inode: int, count: int) -> None:
        if inode in self._result_by_inode:
            query, result = self._result_by_inode[inode]
            result.lookups = max(0, result.lookups - count)
            self._drop_result_if_unused(query, result)
        elif inode in self._query_by_inode:
            query = self._query_by_inode[inode]
            query.lookups = max(0, query.lookups - count)
            self._drop_query_if_unused(query)
        elif inode == self.root_inode:
            self._root_lookups = max(0, self._root_lookups - count)

    def _drop_result_if_unused(self, query: _Query, result: _Result) -> None:
        """Drop a result the kernel does not hold, no listing may still return, and the
        query no longer lists (then the query itself, if nothing holds it either)."""
        if result.lookups or self._pinned.get(result.inode):
            return
        if query.by_name.get(result.name) is result and self._queries.get(query.name) is query:
            return
        self._drop_result(query, result)
        if self._queries.get(query.name) is query:
            self._drop_query_if_unused(query)

    def _drop_result(self, query: _Query, result: _Result) -> None:
        self._result_by_inode.pop(result.inode, None)
        if query.inode_of_file.get(result.hit.file_id) is result:
            del query.inode_of_file[result.hit.file_id]

    def _drop_query_if_unused(self, query: _Query) -> None:
        if query.saved or query.lookups > 0:
            return
        held = [r for r in query.inode_of_file.values() if r.lookups or self._pinned.get(r.inode)]
        if held:
            return  # the last of them to go drops the query (_drop_result_if_unused)
        for result in list(query.inode_of_file.values()):
            self._drop_result(query, result)
        del self._queries[query.name]
        del self._query_by_inode[query.inode]

    # --- saved queries -------------------------------------------------------------------

    async def mkdir(self, parent: int, name: bytes) -> pyfuse3.EntryAttributes:
        if parent != self.root_inode:
            raise OSError(errno.EROFS, "only search/ holds saved queries")
        try:
            text = query_text(name)
        except FileNotFoundError:  # a dot-name or a probe cannot be a saved query
            raise OSError(errno.EINVAL, "not a query name") from None
        existing = self._queries.get(name)
        if existing is not None and existing.saved:
            raise FileExistsError(errno.EEXIST, "query already saved")
        await trio.to_thread.run_sync(self._catalog.reads.save_query, name, limiter=self._limiter)
        query = self._query(name, text)
        query.saved = True
        query.lookups += 1
        self._root_changed_ns = time.time_ns()
        log.info("saved query %r", text)
        return self._query_attributes(query)

    async def rmdir(self, parent: int, name: bytes) -> None:
        if parent != self.root_inode:
            raise OSError(errno.EROFS, "results cannot be removed here")
        query = self._queries.get(name)
        if query is None or not query.saved:
            query_text(name)  # a probe name is absent; any other query may be dropped
            return
        await trio.to_thread.run_sync(self._catalog.reads.remove_query, name, limiter=self._limiter)
        query.saved = False
        self._root_changed_ns = time.time_ns()
        log.info("removed saved query %r", query.text)
        self._drop_query_if_unused(query)

    # --- results ----------------------------------------------------------------------------

    async def _refresh(self, query: _Query) -> None:
        """Run the query's search unless its results are current."""
        async with query.lock:
            version = self._engine_version()
            if query.version == version and version >= 0:
                return
            try:
                hits, version = await trio.to_thread.run_sync(
                    self._search, query.text, limiter=self._limiter
                )
            except NotReady as error:
                log.warning("search %r: %s", query.text, error)
                raise OSError(errno.EAGAIN, str(error)) from None
            if self._queries.get(query.name) is not query:
                return  # dropped while searching: keep nothing for it
            self._set_results(query, hits)
            query.version = version

    def _engine_version(self) -> int:
        try:
            return self._engine.wait_ready(timeout=0).searcher.version
        except NotReady:
            return -1

    def _search(self, text: str) -> tuple[list[Hit], int]:
        space = self._engine.wait_ready()
        version = space.searcher.version  # before searching: a change during it triggers another
        started = time.perf_counter()
        query = parse_query(text)  # valid: query_text checked it
        hits = space.searcher.search_query(query, self._settings.top_k, space.max_distance)
        log.info("search %r: %d results in %.1f ms",
                 text, len(hits), (time.perf_counter() - started) * 1000)  # fmt: skip
        return hits, version

    def _set_results(self, query: _Query, hits: list[Hit]) -> None:
        old_names = set(query.by_name)
        results = []
        for name, hit in zip(result_names(hits), hits, strict=True):
            result = query.inode_of_file.get(hit.file_id)
            if result is None:
                result = _Result(self._inodes.allocate(), name, hit)
                query.inode_of_file[hit.file_id] = result
                self._result_by_inode[result.inode] = (query, result)
            result.name, result.hit = name, hit
            results.append(result)
        query.results = results
        query.by_name = {result.name: result for result in results}
        shown = [result.hit.file_id for result in results]
        if shown != query.shown:
            query.shown, query.changed_ns = shown, time.time_ns()
            # The kernel may cache the old mtime: the watcher drops it, from a thread
            # (doing it here, inside a request on this directory, could deadlock).
            self._stale_attributes.add(query.inode)
            self._changed.set()
        for name in old_names - set(query.by_name):
            pyfuse3.invalidate_entry_async(query.inode, name, ignore_enoent=True)
        for result in list(query.inode_of_file.values()):
            if query.by_name.get(result.name) is not result:
                self._drop_result_if_unused(query, result)

    # --- attributes ----------------------------------------------------------------------------

    def _directory_attributes(self, inode: int, mtime_ns: int) -> pyfuse3.EntryAttributes:
        root = self._store.lstat(b"")
        attr = pyfuse3.EntryAttributes()
        attr.st_ino = inode
        attr.entry_timeout = self._entry_timeout
        attr.attr_timeout = RESULT_TIMEOUT
        attr.st_mode = stat.S_IFDIR | 0o755
        attr.st_nlink = 2
        attr.st_uid, attr.st_gid = root.st_uid, root.st_gid  # the store's owner saves queries
        attr.st_size = 0
        attr.st_blksize = 4096
        attr.st_atime_ns = attr.st_ctime_ns = attr.st_mtime_ns = mtime_ns
        return attr

    def _query_attributes(self, query: _Query) -> pyfuse3.EntryAttributes:
        attr = self._directory_attributes(query.inode, query.changed_ns)
        if not query.saved:
            # Not cached: a cached entry would answer a later `mkdir` with EEXIST
            # without asking us (see caller_is_making_a_directory).
            attr.entry_timeout = 0
        return attr

    def _result_attributes(self, result: _Result) -> pyfuse3.EntryAttributes:
        info = self._store.lstat(result.hit.path)  # FileNotFoundError if gone meanwhile
        attr = entry_attributes(result.inode, info, RESULT_TIMEOUT, RESULT_TIMEOUT)
        attr.st_mode = stat.S_IFREG | (stat.S_IMODE(info.st_mode) & ~0o7222)  # read-only
        attr.st_nlink = 1  # one name: this entry (see docs/architecture.md)
        return attr

    # --- reading results -----------------------------------------------------------------------

    async def open(self, inode: int, flags: int) -> int:
        if inode not in self._result_by_inode:
            raise OSError(errno.EISDIR, "a directory")
        if flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC:
            raise OSError(errno.EROFS, "search results are read-only")
        _, result = self._result_by_inode[inode]
        return self._store.open(result.hit.path, os.O_RDONLY | os.O_NONBLOCK)

    def getxattr(self, inode: int, name: bytes) -> bytes:
        entry = self._result_by_inode.get(inode)
        if entry is None:
            raise pyfuse3.FUSEError(pyfuse3.ENOATTR)
        hit = entry[1].hit
        values = {
            XATTR_SCORE: f"{hit.score:.4f}".encode(),
            XATTR_DISTANCE: f"{hit.distance:.4f}".encode(),
            XATTR_CAPTION: hit.caption.encode(),
            XATTR_PATH: hit.path,
            XATTR_TRIPLETS: json.dumps([list(t) for t in triplets(hit.caption)]).encode(),
        }
        if name not in values:
            raise pyfuse3.FUSEError(pyfuse3.ENOATTR)
        return values[name]

    def listxattr(self, inode: int) -> list[bytes]:
        return list(_RESULT_XATTRS) if inode in self._result_by_inode else []

    # --- telling the kernel ----------------------------------------------------------------------

    def index_changed(self) -> None:
        """Results may differ now (trio thread; called via the trio token)."""
        self._changed.set()

    async def watch(self) -> None:
        """When the index changes, search again for every query directory the kernel
        knows, and where the results differ, move its mtime and drop the kernel's cached
        attributes and pages of it, so a file manager that looks again sees them."""
        while True:
            await self._changed.wait()
            self._changed = trio.Event()
            await trio.sleep(0.2)  # one pass for a burst of changes
            for query in list(self._queries.values()):
                if query.lookups == 0 or query.version < 0:
                    continue  # not shown anywhere, or never searched: nothing to redo
                try:
                    await self._refresh(query)  # marks it stale if its results moved
                except OSError as error:
                    log.warning("refreshing %r: %s", query.text, error)
                except Exception:  # this task must outlive any one bad search
                    log.exception("refreshing %r failed", query.text)
            stale, self._stale_attributes = self._stale_attributes, set()
            for inode in stale:
                await trio.to_thread.run_sync(_invalidate_inode, inode)


def _invalidate_inode(inode: int) -> None:
    try:
        pyfuse3.invalidate_inode(inode, attr_only=False)
    except OSError as error:  # the kernel forgot it already, or the mount is going away
        if error.errno not in (errno.ENOENT, errno.EBADF):
            log.warning("cannot invalidate inode %d: %s", inode, error)
