"""The places view: `places/` lists the countries the stored photos were taken in,
`places/<country>/` its cities, `places/<country>/<city>/` the photos taken there,
newest first. Places come from the photos' GPS positions (the place facet,
semfs/ingest/facets.py), as `where:<country>/<city>` facts in the catalog.

A catalog folder view (catalog_folders.py), as tags/ is: the folders' "queries" are
"<country>/<city>" and the catalog answers them. A country's folder is a folder of that
tree too, but lists its cities instead of results. Each folder's size is how many photos
it holds; names are as GeoNames writes them ("Reykjavík", "Italy").
"""

from __future__ import annotations

import errno
import os
from collections.abc import Collection

import pyfuse3

from semfs.catalog.facet_tokens import WHERE, WHERE_SEPARATOR
from semfs.catalog.records import StoredHit
from semfs.fs.inodes import InodeTable
from semfs.fs.views.catalog_folders import MAX_IMAGES, CatalogFolderView, CatalogSearch
from semfs.fs.views.query_tree import QueryFolder
from semfs.search.engine import Engine
from semfs.search.searcher import Hit
from semfs.store.backing import BackingStore

PREFIX = WHERE + ":"


class PlaceSearch(CatalogSearch):
    """The photos of a "<country>/<city>" folder (a country's own folder has none: it
    lists its cities)."""

    kind = "places"

    def search(self, text: str) -> tuple[list[Hit], int]:
        if WHERE_SEPARATOR not in text:
            return [], self._engine.wait_ready().searcher.version
        return super().search(text)

    def _stored(self, text: str, model: str) -> list[StoredHit]:
        return self._engine.catalog.reads.with_token(PREFIX + text, model, MAX_IMAGES)


class PlacesView(CatalogFolderView):
    refusal = "places come from the photos' GPS positions"
    not_found = "no photo was taken in this country"

    def __init__(
        self, engine: Engine, inodes: InodeTable, store: BackingStore, entry_timeout: float
    ) -> None:
        super().__init__(
            engine.settings.places_dir_name, engine, inodes, store, entry_timeout,
            PlaceSearch(engine),
        )  # fmt: skip
        # the counts' folder keys are b"Italy" and b"Italy/Rome"; country -> its cities
        self._cities: dict[bytes, list[bytes]] = {}

    def _read_counts(self) -> list[tuple[str, int]]:
        return self._catalog.reads.token_counts(PREFIX)

    def _take_counts(self, counted: list[tuple[str, int]]) -> dict[bytes, int]:
        """Every place has a folder that lives as long as a photo is taken there."""
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
        self._cities = cities
        return counts

    def _top_names(self) -> Collection[bytes]:
        return self._cities

    def _is_country(self, folder: QueryFolder) -> bool:
        return b"/" not in folder.name

    async def _look_up_below(
        self, parent_folder: QueryFolder, name: bytes
    ) -> pyfuse3.EntryAttributes:
        tree = self.tree
        if self._is_country(parent_folder):
            key = parent_folder.name + b"/" + name
            if name not in self._cities.get(parent_folder.name, []) or key not in tree.folders:
                raise FileNotFoundError(errno.ENOENT, "no photo was taken in this city")
            return tree.look_up_folder(tree.folders[key])
        return await tree.look_up_result(parent_folder, name)

    async def _listing_below(self, inode: int) -> list[tuple[bytes, pyfuse3.EntryAttributes]]:
        """A country's cities, or a city's photos."""
        await self._recount()
        tree = self.tree
        folder = tree.folder_at(inode)
        if folder is not None and self._is_country(folder):
            keys = [folder.name + b"/" + city for city in self._cities.get(folder.name, [])]
            return [
                (key.rpartition(b"/")[2], tree.folder_attributes(tree.folders[key]))
                for key in keys if key in tree.folders
            ]  # fmt: skip
        return await tree.listing(inode)
