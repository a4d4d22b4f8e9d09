"""What every result view keeps: a root directory of query folders, each listing result
entries, with their stable inodes, the kernel's lookup counts, listings still being read,
and the refresh when the index changes.

A view (search/, tags/, similar/) holds one `QueryTree` and gives it a `ResultSource`:
how to run a folder's query, and which version of the index results are of. The view
decides which names are folders (queries, keywords, examples); the tree does the rest.

Result entries are read-only views of the stored images: each has its own stable inode
per (query, image) that reads the image's content, shows its size and times, and
carries `user.semfs.score`, `user.semfs.caption` and `user.semfs.path` (see
docs/architecture.md for why not the image's own inode). In a tree that ranks its names
(`01 cat.png`, names.py) an entry whose rank changes is renamed and keeps its inode, so
a file open under the old name goes on reading the same image.

Only the trio thread touches this state; searches run in worker threads.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import pyfuse3
import trio

from semfs.config import CAPTION_XATTR
from semfs.fs.attributes import entry_attributes, negative_entry
from semfs.fs.inodes import InodeTable
from semfs.fs.views.names import is_probe, ranked_names, result_names
from semfs.ml.triplets import triplets
from semfs.search.engine import NotReady
from semfs.search.searcher import Hit
from semfs.store.backing import BackingStore

log = logging.getLogger(__name__)

RESULT_TIMEOUT = 1.0  # kernel cache lifetime of result entries: results change often
WATCH_BURST = 0.2  # seconds: the watch makes one pass for a burst of index changes
# The most of the time the watch's passes may take: after a pass, it waits nine times as
# long. Every folder the kernel holds is searched again in a pass, and a user keeps many
# (at 1 M, 61 searches ran beside a block of 40 new queries while ingest stored a batch
# every ~0.5 s: the new ones took 23 ms p50 instead of 17).
WATCH_SHARE = 0.1
# Folders unused for this long are searched again only when next used (a listing, a
# lookup in it): the kernel holds a folder until it needs the memory, long after anyone
# looks, and a pass over them all after each batch of ingest would be wasted.
WATCH_RECENT = 300.0
XATTR_SCORE = b"user.semfs.score"
XATTR_DISTANCE = b"user.semfs.distance"
XATTR_CAPTION = CAPTION_XATTR
XATTR_PATH = b"user.semfs.path"
XATTR_TRIPLETS = b"user.semfs.triplets"  # JSON: [[subject, verb, object], ...]
_RESULT_XATTRS = [XATTR_SCORE, XATTR_DISTANCE, XATTR_CAPTION, XATTR_PATH, XATTR_TRIPLETS]


class ResultSource(Protocol):
    """Where a view's results come from."""

    def version(self) -> int:
        """The version of the index results would now come from; -1 if not ready."""

    def search(self, text: str) -> tuple[list[Hit], int]:
        """The results of a folder's query text, and the version they are of (worker
        thread). Raises NotReady if the models are not loaded."""


@dataclass
class ResultEntry:
    inode: int
    name: bytes
    hit: Hit
    lookups: int = 0


@dataclass
class QueryFolder:
    inode: int
    name: bytes
    text: str
    saved: bool = False  # listed in the view's root, and kept while nothing holds it
    lookups: int = 0
    changed_ns: int = field(default_factory=time.time_ns)
    version: int = -1  # of the index when `results` were computed
    results: list[ResultEntry] = field(default_factory=list)
    by_name: dict[bytes, ResultEntry] = field(default_factory=dict)
    inode_of_file: dict[int, ResultEntry] = field(default_factory=dict)  # live, by file
    shown: list[int] = field(default_factory=list)  # file ids listed, in order
    lock: trio.Lock = field(default_factory=trio.Lock)
    used: float = field(default_factory=time.monotonic)  # the kernel's last ask about it


Describe = Callable[[QueryFolder, pyfuse3.EntryAttributes], None]
RankLimit = Callable[[str], int]  # the most results a folder of this text lists


class QueryTree:
    def __init__(
        self,
        inodes: InodeTable,
        store: BackingStore,
        entry_timeout: float,
        source: ResultSource,
        limiter: trio.CapacityLimiter,
        shared: bool = False,
        describe_folder: Describe | None = None,
        rank_limit: RankLimit | None = None,
    ) -> None:
        self._inodes = inodes
        self._store = store
        self._entry_timeout = entry_timeout
        self._source = source
        self._limiter = limiter
        self._describe_folder = describe_folder  # the view's own touch on folder attributes
        # Results are named behind their rank, as wide as a folder's limit (names.py);
        # None: by their plain names (tags/, or the result_names setting).
        self._rank_limit = rank_limit
        # Mounted for other users too (allow_other): the kernel shares cached entries
        # between users, so result entries are not cached and every access asks us.
        self._result_timeout = 0.0 if shared else RESULT_TIMEOUT
        self.root_inode = inodes.allocate()
        self._root_lookups = 0
        self._root_changed_ns = time.time_ns()  # moves when a folder is saved or removed
        self.folders: dict[bytes, QueryFolder] = {}
        self._folder_by_inode: dict[int, QueryFolder] = {}
        self._result_by_inode: dict[int, tuple[QueryFolder, ResultEntry]] = {}
        # Results in listings still being read: readdir may reply with them later, and
        # the kernel must then find them, even if a newer search has dropped them.
        self._pinned: dict[int, int] = {}
        self._changed = trio.Event()
        self._stale_attributes: set[int] = set()  # folder inodes whose mtime moved

    # --- the tree --------------------------------------------------------------------

    def owns(self, inode: int) -> bool:
        return (
            inode == self.root_inode
            or inode in self._folder_by_inode
            or inode in self._result_by_inode
        )

    def folder(self, name: bytes, text: str) -> QueryFolder:
        """The folder of that name, made if new."""
        folder = self.folders.get(name)
        if folder is None:
            folder = QueryFolder(self._inodes.allocate(), name, text)
            self.folders[name] = folder
            self._folder_by_inode[folder.inode] = folder
        return folder

    def folder_at(self, inode: int) -> QueryFolder | None:
        return self._folder_by_inode.get(inode)

    def is_saved(self, name: bytes) -> bool:
        folder = self.folders.get(name)
        return folder is not None and folder.saved

    def saved_folders(self) -> list[tuple[bytes, pyfuse3.EntryAttributes]]:
        """The root's listing: its saved folders."""
        saved = [folder for folder in self.folders.values() if folder.saved]
        return [(folder.name, self.folder_attributes(folder)) for folder in saved]

    def root_changed(self) -> None:
        """A folder was saved in the root or removed from it."""
        self._root_changed_ns = time.time_ns()

    # --- lookups and the kernel's counts ----------------------------------------------

    def look_up_root(self) -> pyfuse3.EntryAttributes:
        self._root_lookups += 1
        return self.directory_attributes(self.root_inode, self._root_changed_ns)

    def look_up_folder(self, folder: QueryFolder) -> pyfuse3.EntryAttributes:
        folder.lookups += 1
        folder.used = time.monotonic()  # not a listing of its parent: that uses no folder
        return self.folder_attributes(folder)

    async def look_up_in_folder(self, parent: int, name: bytes) -> pyfuse3.EntryAttributes:
        """A result in folder `parent`. A probe name that is not one gets a negative entry
        the kernel keeps, so a file manager's probes of every folder come here once and
        never cost a search (a hidden image can still be a result)."""
        folder = self._folder_by_inode.get(parent)
        if is_probe(name) and (folder is None or name not in folder.by_name):
            return negative_entry(self._entry_timeout)
        if folder is None:
            raise OSError(errno.ENOTDIR, "not a directory")
        return await self.look_up_result(folder, name)

    async def look_up_result(self, folder: QueryFolder, name: bytes) -> pyfuse3.EntryAttributes:
        folder.used = time.monotonic()
        await self.refresh(folder)
        result = folder.by_name.get(name)
        if result is None:
            raise FileNotFoundError(errno.ENOENT, "not among the results")
        attributes = self._result_attributes(result)
        result.lookups += 1
        return attributes

    def getattr(self, inode: int) -> pyfuse3.EntryAttributes:
        if inode == self.root_inode:
            return self.directory_attributes(inode, self._root_changed_ns)
        if inode in self._folder_by_inode:
            folder = self._folder_by_inode[inode]
            folder.used = time.monotonic()
            return self.folder_attributes(folder)
        _, result = self._result_by_inode[inode]
        return self._result_attributes(result)

    async def listing(self, inode: int) -> list[tuple[bytes, pyfuse3.EntryAttributes]]:
        """The entries of the root (its saved folders) or of a folder (its results)."""
        if inode == self.root_inode:
            return self.saved_folders()
        folder = self._folder_by_inode[inode]
        folder.used = time.monotonic()  # not in refresh(): the watch's own must not count
        await self.refresh(folder)
        entries = []
        for result in folder.results:
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
        if inode in self._folder_by_inode:
            self._folder_by_inode[inode].lookups += 1
        elif inode in self._result_by_inode:
            self._result_by_inode[inode][1].lookups += 1
        elif inode == self.root_inode:
            self._root_lookups += 1

    def forget(self, inode: int, count: int) -> None:
        if inode in self._result_by_inode:
            folder, result = self._result_by_inode[inode]
            result.lookups = max(0, result.lookups - count)
            self._drop_result_if_unused(folder, result)
        elif inode in self._folder_by_inode:
            folder = self._folder_by_inode[inode]
            folder.lookups = max(0, folder.lookups - count)
            self.drop_folder_if_unused(folder)
        elif inode == self.root_inode:
            self._root_lookups = max(0, self._root_lookups - count)

    def _drop_result_if_unused(self, folder: QueryFolder, result: ResultEntry) -> None:
        """Drop a result the kernel does not hold, no listing may still return, and the
        folder no longer lists (then the folder itself, if nothing holds it either)."""
        if result.lookups or self._pinned.get(result.inode):
            return
        if folder.by_name.get(result.name) is result and self.folders.get(folder.name) is folder:
            return
        self._drop_result(folder, result)
        if self.folders.get(folder.name) is folder:
            self.drop_folder_if_unused(folder)

    def _drop_result(self, folder: QueryFolder, result: ResultEntry) -> None:
        self._result_by_inode.pop(result.inode, None)
        if folder.inode_of_file.get(result.hit.file_id) is result:
            del folder.inode_of_file[result.hit.file_id]

    def drop_folder_if_unused(self, folder: QueryFolder) -> None:
        """Forget a folder that is not saved, once the kernel holds neither it nor any
        of its results."""
        if folder.saved or folder.lookups > 0:
            return
        held = [r for r in folder.inode_of_file.values() if r.lookups or self._pinned.get(r.inode)]
        if held:
            return  # the last of them to go drops the folder (_drop_result_if_unused)
        for result in list(folder.inode_of_file.values()):
            self._drop_result(folder, result)
        del self.folders[folder.name]
        del self._folder_by_inode[folder.inode]

    # --- results ----------------------------------------------------------------------

    async def refresh(self, folder: QueryFolder) -> None:
        """Run the folder's query unless its results are current."""
        async with folder.lock:
            version = self._source.version()
            if folder.version == version and version >= 0:
                return
            try:
                hits, version = await trio.to_thread.run_sync(
                    self._source.search, folder.text, limiter=self._limiter
                )
            except NotReady as error:
                log.warning("search %r: %s", folder.text, error)
                raise OSError(errno.EAGAIN, str(error)) from None
            if self.folders.get(folder.name) is not folder:
                return  # dropped while searching: keep nothing for it
            self._set_results(folder, hits)
            folder.version = version

    def _result_names(self, folder: QueryFolder, hits: list[Hit]) -> list[bytes]:
        if self._rank_limit is None:
            return result_names(hits)
        return ranked_names(hits, self._rank_limit(folder.text))

    def _set_results(self, folder: QueryFolder, hits: list[Hit]) -> None:
        old_by_name = folder.by_name
        results = []
        for name, hit in zip(self._result_names(folder, hits), hits, strict=True):
            result = folder.inode_of_file.get(hit.file_id)
            if result is None:
                result = ResultEntry(self._inodes.allocate(), name, hit)
                folder.inode_of_file[hit.file_id] = result
                self._result_by_inode[result.inode] = (folder, result)
            result.name, result.hit = name, hit
            results.append(result)
        folder.results = results
        folder.by_name = {result.name: result for result in results}
        shown = [result.hit.file_id for result in results]
        if folder.version < 0:
            # The first search: nothing was listed before, so the kernel holds no stale
            # page or mtime of it, and the watch has nothing to redo (waking it made it
            # go over every folder after each new query).
            folder.shown = shown
        elif shown != folder.shown:
            folder.shown, folder.changed_ns = shown, time.time_ns()
            # The kernel may cache the old mtime: the watcher drops it, from a thread
            # (doing it here, inside a request on this directory, could deadlock).
            self._stale_attributes.add(folder.inode)
            self._changed.set()
        # A name gone, or now another entry's (a rank changed hands): the kernel must
        # look it up again. An entry renamed keeps its inode, and its open files.
        for name, result in old_by_name.items():
            if folder.by_name.get(name) is not result:
                pyfuse3.invalidate_entry_async(folder.inode, name, ignore_enoent=True)
        for result in list(folder.inode_of_file.values()):
            if folder.by_name.get(result.name) is not result:
                self._drop_result_if_unused(folder, result)

    # --- attributes -------------------------------------------------------------------

    def directory_attributes(self, inode: int, mtime_ns: int) -> pyfuse3.EntryAttributes:
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

    def folder_attributes(self, folder: QueryFolder) -> pyfuse3.EntryAttributes:
        attr = self.directory_attributes(folder.inode, folder.changed_ns)
        if not folder.saved:
            # Not cached: a cached entry would answer a later `mkdir` with EEXIST
            # without asking us (see caller_is_making).
            attr.entry_timeout = 0
        if self._describe_folder is not None:
            self._describe_folder(folder, attr)
        return attr

    def _result_attributes(self, result: ResultEntry) -> pyfuse3.EntryAttributes:
        info = self._store.lstat(result.hit.path)  # FileNotFoundError if gone meanwhile
        attr = entry_attributes(result.inode, info, self._result_timeout, self._result_timeout)
        attr.st_mode = stat.S_IFREG | (stat.S_IMODE(info.st_mode) & ~0o7222)  # read-only
        attr.st_nlink = 1  # one name: this entry (see docs/architecture.md)
        return attr

    # --- reading results --------------------------------------------------------------

    def real_path(self, inode: int) -> bytes | None:
        """The store path of a result entry (None for the root and folders)."""
        entry = self._result_by_inode.get(inode)
        return None if entry is None else entry[1].hit.path

    def open(self, inode: int, flags: int) -> int:
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

    # --- telling the kernel -----------------------------------------------------------

    def index_changed(self) -> None:
        """Results may differ now (trio thread; called via the trio token)."""
        self._changed.set()

    async def watch(self) -> None:
        """When the index changes, search again for every folder the kernel knows, and
        where the results differ, move its mtime and drop the kernel's cached attributes
        and pages of it, so a file manager that looks again sees them. At most
        WATCH_SHARE of the time: a folder listed meanwhile is searched then anyway."""
        while True:
            await self._changed.wait()
            self._changed = trio.Event()
            await trio.sleep(WATCH_BURST)
            started = trio.current_time()
            version = self._source.version()
            recent = time.monotonic() - WATCH_RECENT
            # Not shown anywhere, never searched, unused for long, or current: nothing to
            # redo now. (Ingest tells of work that changes no result, e.g. OCR that found
            # no text; taking every folder's lock to find that out took the trio thread's
            # time.)
            behind = [
                folder for folder in self.folders.values()
                if folder.lookups and folder.version >= 0
                and (folder.saved or folder.used >= recent)
                and (folder.version != version or version < 0)
            ]  # fmt: skip
            for folder in behind:
                try:
                    await self.refresh(folder)  # marks it stale if its results moved
                except OSError as error:
                    log.warning("refreshing %r: %s", folder.text, error)
                except Exception:  # this task must outlive any one bad search
                    log.exception("refreshing %r failed", folder.text)
            stale, self._stale_attributes = self._stale_attributes, set()
            for inode in stale:
                await trio.to_thread.run_sync(_invalidate_inode, inode)
            await trio.sleep((trio.current_time() - started) * (1 / WATCH_SHARE - 1))


def _invalidate_inode(inode: int) -> None:
    try:
        pyfuse3.invalidate_inode(inode, attr_only=False)
    except OSError as error:  # the kernel forgot it already, or the mount is going away
        if error.errno not in (errno.ENOENT, errno.EBADF):
            log.warning("cannot invalidate inode %d: %s", inode, error)
