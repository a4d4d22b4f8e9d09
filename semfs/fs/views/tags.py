"""The tags view: `tags/` lists the keywords of the indexed images (each folder's size is
how many images have it), `tags/<kw>/` the images with that keyword, newest first, and
`tags/<a>/<b>/` those with both (any depth). Keywords are the classifier's labels and
their kinds (semfs/ml/label_tags.py) and YAKE's keywords of what people wrote
(semfs/ml/keywords.py), as ingest/descriptions.py takes them.

A catalog folder view (catalog_folders.py), as places/ is: a keyword folder is a
"query" whose results come from the catalog instead of the index. Its results keep
their plain names (`cat.png`) whatever the result_names setting: rank prefixes are asked
for where a listing is ranked by score, and a keyword folder lists its images newest
first, never by score.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Collection

import pyfuse3

from semfs.catalog.records import StoredHit
from semfs.fs.inodes import InodeTable
from semfs.fs.views.catalog_folders import MAX_IMAGES, CatalogFolderView, CatalogSearch
from semfs.fs.views.query_tree import QueryFolder
from semfs.search.engine import Engine
from semfs.store.backing import BackingStore

MAX_KEYWORDS = 10_000  # folders listed in tags/, most common first
SEPARATOR = "/"  # between the keywords of a nested folder's text: never in a keyword


class KeywordSearch(CatalogSearch):
    """The results of tags/: the images that have every keyword of a folder's text."""

    kind = "tags"

    def _stored(self, text: str, model: str) -> list[StoredHit]:
        keywords = text.split(SEPARATOR)
        return self._engine.catalog.reads.with_keywords(keywords, model, MAX_IMAGES)


class TagsView(CatalogFolderView):
    refusal = "tags come from the captions"
    not_found = "no image has this keyword"

    def __init__(
        self, engine: Engine, inodes: InodeTable, store: BackingStore, entry_timeout: float
    ) -> None:
        super().__init__(
            engine.settings.tags_dir_name, engine, inodes, store, entry_timeout,
            KeywordSearch(engine),
        )  # fmt: skip

    def _read_counts(self) -> list[tuple[str, int]]:
        return self._catalog.reads.keyword_counts(MAX_KEYWORDS)

    def _take_counts(self, counted: list[tuple[str, int]]) -> dict[bytes, int]:
        """Each keyword has a folder that lives as long as the keyword does."""
        return {os.fsencode(word): count for word, count in counted if SEPARATOR not in word}

    def _top_names(self) -> Collection[bytes]:
        return self._counts

    async def _look_up_below(
        self, parent_folder: QueryFolder, name: bytes
    ) -> pyfuse3.EntryAttributes:
        """An image of the folder, or a keyword that narrows it to `tags/<a>/<b>/`."""
        tree, counts = self.tree, self._counts
        await tree.refresh(parent_folder)
        if name in parent_folder.by_name:
            return await tree.look_up_result(parent_folder, name)
        if name not in counts or os.fsdecode(name) in parent_folder.text.split(SEPARATOR):
            raise FileNotFoundError(errno.ENOENT, "neither an image here nor a keyword")
        key = parent_folder.name + b"/" + name
        folder = tree.folder(key, parent_folder.text + SEPARATOR + os.fsdecode(name))
        return tree.look_up_folder(folder)
