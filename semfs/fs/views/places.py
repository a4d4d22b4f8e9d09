"""The places view: `places/` lists the countries the stored photos were taken in,
`places/<country>/` its cities, `places/<country>/<city>/` the photos taken there,
newest first. Places come from the photos' GPS positions (the place facet,
semfs/ingest/facets.py), as `where:<country>/<city>` facts in the catalog.

Built as tags/ is (tags.py): the folders and result entries are a QueryTree whose
"queries" are "<country>/<city>" and whose results the catalog answers. A country's
folder is a folder of that tree too, but lists its cities instead of results. Each
folder's size is how many photos it holds; names are as GeoNames writes them
("Reykjavík", "Italy").
"""

from __future__ import annotations

import errno
import logging
import math
import os
import time

import pyfuse3
import trio

from semfs.catalog.facet_tokens import WHERE, WHERE_SEPARATOR
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

MAX_IMAGES = 10_000  # photos listed in one city's folder, newest first
RECOUNT_EVERY = 2.0  # seconds between recounts while images stream in
PREFIX = WHERE + ":"


class PlaceSearch(TextSearch):
    """The photos of a "<country>/<city>" folder (a country's own folder has none: it
    lists its cities)."""

    def search(self, text: str) -> tuple[list[Hit], int]:
        space = self._engine.wait_ready()
        version = space.searcher.version
        if WHERE_SEPARATOR not in text:
            return [], version
        started = time.perf_counter()
        stored = self._engine.catalog.reads.with_token(PREFIX + text, space.model, MAX_IMAGES)
        log.info("places %s: %d images in %.1f ms", text, len(stored),
                 (time.perf_counter() - started) * 1000)  # fmt: skip
        return [Hit.of(hit, 0.0) for hit in stored], version


class PlacesView(TreeView):
    def __init__(
        self, engine: Engine, inodes: InodeTable, store: BackingStore, entry_timeout: float
    ) -> None:
        self.name = os.fsencode(engine.settings.places_dir_name)
        self._catalog = engine.catalog
        self._entry_timeout = entry_timeout
        self._limiter = trio.CapacityLimiter(4)
        self._source = PlaceSearch(engine)
        self.tree = QueryTree(
            inodes, store, entry_timeout, self._source, self._limiter,
            engine.settings.allow_other, self._describe_folder,
        )  # fmt: skip
        self.root_inode = self.tree.root_inode
        # folder key (b"Italy" or b"Italy/Rome") -> photos; country -> its cities
        self._counts: dict[bytes, int] = {}
        self._cities: dict[bytes, list[bytes]] = {}
        self._counts_version = -2
        self._counted_at = -math.inf

    async def _places(self) -> dict[bytes, list[bytes]]:
        """Country -> its cities, recounted when the index changed; every place has a
        folder that lives as long as a photo is taken there."""
        version = self._source.version()
        stale = version != self._counts_version or version < 0
        if stale and time.monotonic() - self._counted_at >= RECOUNT_EVERY:
            self._counted_at = time.monotonic()
            counted = await trio.to_thread.run_sync(
                self._catalog.reads.token_counts, PREFIX, limiter=self._limiter
            )
            counts: dict[bytes, int] = {}
            cities: dict[bytes, list[bytes]] = {}
            for value, count in counted:
                country, _, city = value.removeprefix(PREFIX).partition(WHERE_SEPARATOR)
                if not country or not city:
                    continue
                key = os.fsencode(country)
                counts[key] = counts.get(key, 0) + count
                counts[key + b"/" + os.fsencode(city)] = count
                cities.setdefault(key, []).append(os.fsencode(city))
            self._counts, self._cities, self._counts_version = counts, cities, version
            for key in counts:
                self.tree.folder(key, os.fsdecode(key)).saved = True
            for key, folder in list(self.tree.folders.items()):
                if folder.saved and key not in counts:
                    folder.saved = False  # no photo there any more: the folder may go
                    self.tree.drop_folder_if_unused(folder)
        return self._cities

    def _is_country(self, folder: QueryFolder) -> bool:
        return b"/" not in folder.name

    async def lookup(self, parent: int, name: bytes, pid: int) -> pyfuse3.EntryAttributes:
        tree = self.tree
        if parent == ROOT_INODE:
            return tree.look_up_root()
        parent_folder = tree.folder_at(parent)
        if is_probe(name) and (parent_folder is None or name not in parent_folder.by_name):
            return negative_entry(self._entry_timeout)
        cities = await self._places()
        if parent == self.root_inode:
            if name not in cities:
                raise FileNotFoundError(errno.ENOENT, "no photo was taken in this country")
            return tree.look_up_folder(tree.folders[name])
        if parent_folder is None:
            raise OSError(errno.ENOTDIR, "not a directory")
        if self._is_country(parent_folder):
            key = parent_folder.name + b"/" + name
            if name not in cities.get(parent_folder.name, []) or key not in tree.folders:
                raise FileNotFoundError(errno.ENOENT, "no photo was taken in this city")
            return tree.look_up_folder(tree.folders[key])
        return await tree.look_up_result(parent_folder, name)

    async def listing(self, inode: int) -> list[tuple[bytes, pyfuse3.EntryAttributes]]:
        cities = await self._places()
        tree = self.tree
        if inode == self.root_inode:
            return [(name, tree.folder_attributes(tree.folders[name])) for name in cities]
        folder = tree.folder_at(inode)
        if folder is not None and self._is_country(folder):
            keys = [folder.name + b"/" + city for city in cities.get(folder.name, [])]
            return [
                (key.rpartition(b"/")[2], tree.folder_attributes(tree.folders[key]))
                for key in keys if key in tree.folders
            ]  # fmt: skip
        return await tree.listing(inode)

    def _describe_folder(self, folder: QueryFolder, attr: pyfuse3.EntryAttributes) -> None:
        attr.entry_timeout = self._entry_timeout  # cacheable: there is no mkdir here
        attr.st_size = self._counts.get(folder.name, len(folder.results))

    async def mkdir(self, parent: int, name: bytes, reach: Reach) -> pyfuse3.EntryAttributes:
        raise OSError(errno.EROFS, "places come from the photos' GPS positions")

    async def rmdir(self, parent: int, name: bytes) -> None:
        raise OSError(errno.EROFS, "places come from the photos' GPS positions")
