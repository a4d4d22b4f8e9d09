"""Ranking: a text query -> the stored images whose captions mean that, best first.

The same ranking serves the `search/` view and `semfs search`.
"""

from __future__ import annotations

import datetime
import math
import os
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

import numpy as np

from semfs.catalog.reads import SearchReads
from semfs.catalog.records import StoredHit
from semfs.ml.embedder import QueryCache
from semfs.ml.triplets import agreement, triplets
from semfs.search.index import VectorIndex
from semfs.search.query import Query
from semfs.search.relevance import LOOSE_ABOVE, NounCut, listing
from semfs.search.shortlist import Candidate, Shortlist

MAX_QUERY_CHARS = 1000  # longer text adds nothing to a 128-token embedding
SEED_CUT = 1.0  # the storage design's relevance cut, when no calibrated one is given
# Catalog rows read beyond those still wanted, for stale candidates: few are stale (none
# in an idle store), and each row read costs its pages (~5 of them, most often cold at
# 1 M images); a stale one costs another, smaller read.
CHUNK_MARGIN = 4
EVIDENCE_MARGIN = 16  # the noun cut looks for evidence among the nearest k + 16 first
SHORTLIST_PER_RESULT = 4  # the noun cut looks for evidence among 4 hits per result wanted

# The catalog rows one search has read, by file id (None: no current vector by the
# embedder): a candidate read for one list (the noun cut's carriers, a shorter shortlist)
# is not read again for the next.
Rows = dict[int, StoredHit | None]


@dataclass(frozen=True)
class Hit:
    file_id: int
    path: bytes  # store-relative
    distance: float  # angular distance of caption and query
    caption: str
    size: int = 0
    time_ns: int = 0  # when the photo was taken (EXIF), else the file's mtime
    camera: str = ""
    facets: frozenset[str] = frozenset()  # key:value facet tokens (colour:red)

    @classmethod
    def of(cls, stored: StoredHit, distance: float) -> Hit:
        return cls(stored.file_id, stored.path, distance, stored.caption, stored.size,
                   stored.time_ns, stored.camera, stored.facets)  # fmt: skip

    @property
    def score(self) -> float:
        """Cosine similarity of caption and query (1 = same meaning)."""
        return 1.0 - self.distance * self.distance / 2.0


class Searcher:
    """Ranks by one index: caption vectors for text queries (`search`, `search_query`),
    or image features for search by example (`search_vector` with `table` "image_vectors";
    `queries` None)."""

    def __init__(
        self,
        reads: SearchReads,
        index: VectorIndex,
        queries: QueryCache | None,
        embedder: str,
        table: str = "vectors",
        noun_cut: NounCut | None = None,
    ) -> None:
        self._reads = reads
        self._index = index
        self._queries = queries
        self._embedder = embedder
        self._table = table
        self._noun_cut = noun_cut  # None: the one cut given decides for every query

    @property
    def version(self) -> int:
        """Changes whenever a search could give a different answer."""
        return self._index.version

    def search(
        self, text: str, k: int, max_distance: float = math.inf, keep: HitFilter | None = None
    ) -> list[Hit]:
        """Up to k hits within max_distance (and passing `keep`), nearest first.
        Blocking: call in a thread."""
        return self.search_vector(self._vector(text), k, max_distance, keep)

    def _vector(self, text: str) -> np.ndarray:
        assert self._queries is not None
        return self._queries.vector(" ".join(text.split())[:MAX_QUERY_CHARS])

    def search_vector(
        self,
        vector: np.ndarray,
        k: int,
        max_distance: float = math.inf,
        keep: HitFilter | None = None,
        shortlist: Shortlist | None = None,
    ) -> list[Hit]:
        """Up to k hits nearest to a query vector. Distances are exact: Annoy computes
        them on the stored vectors of its shortlist, the delta and small bases are
        scanned exactly, and the merged shortlist is sorted by them. A `shortlist` the
        caller got from the index already serves if it is long enough."""
        return self._search_vector(vector, k, max_distance, keep, shortlist, {})

    def _search_vector(
        self,
        vector: np.ndarray,
        k: int,
        max_distance: float,
        keep: HitFilter | None,
        shortlist: Shortlist | None,
        rows: Rows,
    ) -> list[Hit]:
        wanted = 2 * k + 16
        if shortlist is not None and shortlist.wanted < wanted:
            shortlist = None
        while True:
            if shortlist is None:
                shortlist = self._index.search(vector, wanted)
            wanted = max(wanted, shortlist.wanted)
            hits = self._first_valid(shortlist.merged(), max_distance, k, keep, rows)
            if len(hits) >= k or shortlist.exhausted(max_distance) or wanted > 64 * k + 1024:
                return hits[:k]
            wanted *= 4  # stale or filtered candidates crowded the shortlist out: look further
            shortlist = None

    def search_query(self, query: Query, k: int, max_distance: float) -> list[Hit]:
        """A query with modifiers (semfs/search/query.py): its own k, cut, filters, exclusions
        and order override the defaults given."""
        k = query.k or k
        cut = query.max_distance if query.max_distance is not None else max_distance
        if not query.text:  # filters alone: the matching images themselves
            order = "date" if query.sort == "score" else query.sort
            stored = self._reads.filtered(self._embedder, time_range_ns(query), query.camera,
                                          query.folder, order, k, query.month,
                                          query.facets)  # fmt: skip
            return [Hit.of(hit, 0.0) for hit in stored]
        # `-word` leaves out what would be a result for `word` at the usual cut, whatever
        # cut the query sets for itself.
        negation_cut = max_distance if math.isfinite(max_distance) else SEED_CUT
        keep = self._keep(query, negation_cut)
        if self._noun_cut is not None and query.max_distance is None and math.isfinite(cut):
            hits = self._search_by_nouns(self._noun_cut, query.text, k, cut, keep)
        else:  # a cut the query sets (@t=) is the user's: it decides alone
            hits = self.search(query.text, k, cut, keep)
        if query.sort == "score":
            return by_roles(hits, query.text)
        return sort_hits(hits, query.sort)

    def _search_by_nouns(
        self, nouns: NounCut, text: str, k: int, cut: float, keep: HitFilter | None
    ) -> list[Hit]:
        """The noun cut (search/relevance.py), as NounCut.select would list the valid
        hits, but with the catalog rows read only of what is listed: the evidence is
        looked up among the index's candidates themselves, the nearest k + EVIDENCE_MARGIN
        first. The carriers go first, so once k of them are valid they are the whole
        listing: the rest of the candidates are not looked up (at 1 M most of the 200
        carry the query's tag), nor the hits within the cut read."""
        vector = self._vector(text)
        loose = cut + LOOSE_ABOVE
        wanted = SHORTLIST_PER_RESULT * k
        shortlist = self._index.search(vector, wanted)
        near = [c for c in shortlist.merged() if c.distance <= loose][:wanted]
        evidence = nouns.evidence_of(text)
        rows: Rows = {}
        carrying: set[int] = set()
        first: list[Hit] = []  # the valid carriers, nearest first
        seen: set[int] = set()
        for part in (near[: k + EVIDENCE_MARGIN], near[k + EVIDENCE_MARGIN :]):
            found = nouns.carrying([c.file_id for c in part], evidence.tags, evidence.words)
            carrying |= found
            if found and evidence.nouns > 1:
                break  # decided: the calibrated cut, no carrier first
            if found:
                carriers = [c for c in part if c.file_id in found]
                first += self._first_valid(carriers, loose, k - len(first), keep, rows, seen)
                if len(first) >= k:
                    return first[:k]
        plan = listing(evidence, carrying, cut)
        within = self._search_vector(vector, k, plan.cut, keep, shortlist, rows)
        if not plan.first:
            return within
        return (first + [hit for hit in within if hit.file_id not in plan.first])[:k]

    def search_example(
        self,
        vector: np.ndarray,
        modifiers: Query,
        k: int,
        max_distance: float,
        leave_out: int | None = None,
    ) -> list[Hit]:
        """Search by example with the modifiers its name ends with (`split_example`): their
        k, cut, filters and order override the defaults given. `leave_out` is the
        example's own file, never its own result."""
        k = modifiers.k or k
        cut = modifiers.max_distance if modifiers.max_distance is not None else max_distance
        times = time_range_ns(modifiers)

        def keep(hits: list[Hit]) -> list[Hit]:
            return [
                hit for hit in hits
                if hit.file_id != leave_out
                and matches_filters(hit, times, modifiers.camera, modifiers.folder,
                                    modifiers.month, modifiers.facets)
            ]  # fmt: skip

        return sort_hits(self.search_vector(vector, k, cut, keep), modifiers.sort)

    def _keep(self, query: Query, cut: float) -> HitFilter | None:
        if not (query.exclude or query.has_filters):
            return None
        times = time_range_ns(query)
        assert self._queries is not None
        negatives = [(word, self._queries.vector(word)) for word in query.exclude]

        def keep(hits: list[Hit]) -> list[Hit]:
            hits = [hit for hit in hits if matches_filters(hit, times, query.camera, query.folder,
                                                           query.month, query.facets)]  # fmt: skip
            if not negatives or not hits:
                return hits
            vectors = self._reads.vectors_of([hit.file_id for hit in hits], self._embedder)
            return [
                hit for hit in hits
                if not any(_excluded(hit, vectors.get(hit.file_id), word, negative, cut)
                           for word, negative in negatives)
            ]  # fmt: skip

        return keep

    def _first_valid(
        self,
        candidates: list[Candidate],
        max_distance: float,
        k: int,
        keep: HitFilter | None,
        rows: Rows,
        seen: set[int] | None = None,
    ) -> list[Hit]:
        """The valid candidates within max_distance that pass `keep`, nearest first, at
        least the first k of them if there are k. The catalog is read a chunk at a time,
        the nearest first, until k are found: the shortlist holds about twice k, and
        reading every row took most of a search (200 of them for the noun cut: 7 ms at
        100 k, loaded machine). `keep` judges each hit on its own, so the first k are
        those a single read of every candidate would give. `seen`: the files found valid
        before (each is listed once), updated."""
        close = [c for c in candidates if c.distance <= max_distance]
        hits: list[Hit] = []
        seen = set() if seen is None else seen
        start = 0
        while start < len(close) and len(hits) < k:
            end = start + k - len(hits) + CHUNK_MARGIN
            found = self._valid(close[start:end], seen, rows)
            hits.extend(found if keep is None else keep(found))
            start = end
        return hits

    def _valid(self, close: list[Candidate], seen: set[int], rows: Rows) -> list[Hit]:
        """Candidates whose vector is still the file's current one (the rest are
        tombstoned: deleted, changed or re-embedded since they were indexed), each file
        once: `seen` holds the files found before and gets these. Rows not in `rows` are
        read, and added to it."""
        unread = {c.file_id for c in close if c.file_id not in rows}
        if unread:
            stored = self._reads.hits(unread, self._embedder, self._table)
            rows.update((file_id, stored.get(file_id)) for file_id in unread)
        hits: list[Hit] = []
        for candidate in close:
            hit = rows[candidate.file_id]
            if hit is None or candidate.file_id in seen:
                continue
            current = hit.seq <= candidate.seq if candidate.from_base else hit.seq == candidate.seq
            if current:
                seen.add(candidate.file_id)
                hits.append(Hit.of(hit, candidate.distance))
        return hits


HitFilter = Callable[[list[Hit]], list[Hit]]


def year_range_ns(years: tuple[int, int] | None) -> tuple[int, int] | None:
    """The first and last nanosecond (UTC, as EXIF times are read) of a range of years."""
    if years is None:
        return None
    first = datetime.datetime(years[0], 1, 1, tzinfo=datetime.UTC)
    after = datetime.datetime(years[1] + 1, 1, 1, tzinfo=datetime.UTC)
    return int(first.timestamp()) * 10**9, int(after.timestamp()) * 10**9 - 1


def time_range_ns(query: Query) -> tuple[int, int] | None:
    """The first and last nanosecond that both `year:` and `date:` allow (None: any; a
    first after the last: none)."""
    ranges = [r for r in (year_range_ns(query.years), date_range_ns(query.dates)) if r]
    if not ranges:
        return None
    return max(r[0] for r in ranges), min(r[1] for r in ranges)


def date_range_ns(dates: tuple[datetime.date, datetime.date] | None) -> tuple[int, int] | None:
    """The first and last nanosecond of a range of days (UTC, as EXIF times are read)."""
    if dates is None:
        return None
    first = datetime.datetime.combine(dates[0], datetime.time(), datetime.UTC)
    after = datetime.datetime.combine(dates[1], datetime.time(), datetime.UTC)
    after += datetime.timedelta(days=1)
    return int(first.timestamp()) * 10**9, int(after.timestamp()) * 10**9 - 1


def matches_filters(
    hit: Hit,
    years: tuple[int, int] | None,
    camera: str | None,
    folder: str | None,
    month: int | None = None,
    facets: Collection[str] = (),
) -> bool:
    """Whether a hit passes the filters: `years` is any time range in ns (time_range_ns),
    `month` 1-12, `facets` tokens it must all have."""
    if years is not None and not years[0] <= hit.time_ns <= years[1]:
        return False
    if month is not None and _month_of(hit.time_ns) != month:
        return False
    if any(token not in hit.facets for token in facets):
        return False
    if camera is not None and camera not in hit.camera.lower():
        return False
    directory = os.fsdecode(hit.path.rpartition(b"/")[0]).lower()
    return folder is None or folder in directory


def _month_of(time_ns: int) -> int:
    return datetime.datetime.fromtimestamp(time_ns // 10**9, datetime.UTC).month


def _excluded(hit: Hit, vector: bytes | None, word: str, negative: np.ndarray, cut: float) -> bool:
    """A hit is left out for `-word` when its caption names the word or means it (is
    within the cut of it, as a result for `word` would be)."""
    if re.search(rf"\b{re.escape(word)}\b", hit.caption, re.IGNORECASE):
        return True
    if vector is None:
        return False
    cosine = float(np.dot(np.frombuffer(vector, dtype=np.float32), negative))
    return math.sqrt(max(0.0, 2.0 - 2.0 * cosine)) <= cut


_SORT_KEYS: dict[str, Callable[[Hit], tuple[object, ...]]] = {
    "date": lambda hit: (-hit.time_ns, hit.file_id),
    "oldest": lambda hit: (hit.time_ns, hit.file_id),
    "name": lambda hit: (hit.path.rpartition(b"/")[2], hit.file_id),
    "size": lambda hit: (-hit.size, hit.file_id),
}


def by_roles(hits: list[Hit], text: str) -> list[Hit]:
    """Who does what to whom: sentence embeddings hardly tell "a dog chasing a cat" from
    "a cat chasing a dog", so when the query has a subject-verb-object triplet, captions
    that say the same go first and captions that say it the other way round go last;
    otherwise the order stays best first (sorted() is stable)."""
    wanted = triplets(text)
    if not wanted:
        return hits
    return sorted(hits, key=lambda hit: -agreement(wanted, triplets(hit.caption)))


def sort_hits(hits: list[Hit], order: str) -> list[Hit]:
    """Hits come best first; any other order is applied to the k best."""
    return hits if order == "score" else sorted(hits, key=_SORT_KEYS[order])
