"""Ranking: a text query -> the stored images whose captions mean that, best first.

The same ranking serves the `search/` view and `semfs search`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from semfs.catalog import Catalog
from semfs.index import Candidate, VectorIndex
from semfs.ml.embedder import QueryCache

MAX_QUERY_CHARS = 1000  # longer text adds nothing to a 128-token embedding


@dataclass(frozen=True)
class Hit:
    file_id: int
    path: bytes  # store-relative
    distance: float  # angular distance of caption and query
    caption: str

    @property
    def score(self) -> float:
        """Cosine similarity of caption and query (1 = same meaning)."""
        return 1.0 - self.distance * self.distance / 2.0


class Searcher:
    def __init__(
        self, catalog: Catalog, index: VectorIndex, queries: QueryCache, embedder: str
    ) -> None:
        self._catalog = catalog
        self._index = index
        self._queries = queries
        self._embedder = embedder

    @property
    def version(self) -> int:
        """Changes whenever a search could give a different answer."""
        return self._index.version

    def search(self, text: str, k: int, max_distance: float = math.inf) -> list[Hit]:
        """Up to k hits within max_distance, nearest first. Blocking: call in a thread."""
        vector = self._queries.vector(" ".join(text.split())[:MAX_QUERY_CHARS])
        wanted = 2 * k + 16
        while True:
            shortlist = self._index.search(vector, wanted)
            hits = self._valid(shortlist.merged(), max_distance)
            if len(hits) >= k or shortlist.exhausted(max_distance) or wanted > 64 * k + 1024:
                return hits[:k]
            wanted *= 4  # stale candidates crowded the shortlist out: look further

    def _valid(self, candidates: list[Candidate], max_distance: float) -> list[Hit]:
        """Candidates whose vector is still the file's current one (the rest are
        tombstoned: deleted, changed or re-embedded since they were indexed)."""
        close = [c for c in candidates if c.distance <= max_distance]
        stored = self._catalog.hits({c.file_id for c in close}, self._embedder)
        hits: list[Hit] = []
        seen: set[int] = set()
        for candidate in close:
            hit = stored.get(candidate.file_id)
            if hit is None or candidate.file_id in seen:
                continue
            current = hit.seq <= candidate.seq if candidate.from_base else hit.seq == candidate.seq
            if current:
                seen.add(candidate.file_id)
                hits.append(Hit(hit.file_id, hit.path, candidate.distance, hit.caption))
        return hits
