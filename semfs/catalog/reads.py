"""What search and the views read from the catalog: the catalog's check of an index's
shortlist (where each file is now, its caption), the filters and keywords the views
list by, the vectors an index is built from, and the queries saved under search/.

Reads run on the calling thread's own read-only connection, so a search never waits
for the ingest thread's writes; the two writes (saved queries) are one transaction
each on the shared connection: see connection.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterator
from typing import Any

from semfs.catalog.connection import CatalogConnection
from semfs.catalog.records import (
    VECTOR_TABLES,
    FileState,
    StoredDescription,
    StoredHit,
    join_path,
    split_path,
)

# "+v.embedder": without the plus, SQLite answers by scanning every vector of the
# embedder (index vectors_by_embedder) and joining files to it: 376 ms a search at 100 k
# images, seconds at 1 M (docs/benchmarks-search.md). With it, each id is looked up.
HIT_COLUMNS = (
    "f.id, f.dir, f.name, v.seq, coalesce(d.caption, ''), f.size, "
    "coalesce(d.taken_ns, f.mtime_ns), coalesce(d.camera, ''), coalesce(d.facets, '[]')"
)
HITS_QUERY = (
    f"SELECT {HIT_COLUMNS} FROM files f "
    "JOIN {table} v ON v.file_id = f.id LEFT JOIN descriptions d ON d.file_id = f.id "
    "WHERE f.id IN ({marks}) AND +v.embedder = ?"
)
VECTORS_SINCE_QUERY = (
    "SELECT file_id, seq, vector FROM {table} WHERE embedder = ? AND seq > ? ORDER BY seq"
)
VECTOR_COUNTS_QUERY = (
    "SELECT count(*) FILTER (WHERE seq <= ?), count(*) FILTER (WHERE seq > ?) "
    "FROM {table} WHERE embedder = ?"
)
# Indexed images by the query filters alone (no text): each filter is off when its
# parameter is NULL. `order` is one of FILTER_ORDERS.
FILTERED_QUERY = (
    f"SELECT {HIT_COLUMNS} FROM files f "
    "JOIN vectors v ON v.file_id = f.id LEFT JOIN descriptions d ON d.file_id = f.id "
    "WHERE f.state = 'indexed' AND +v.embedder = ? "
    "AND (? IS NULL OR coalesce(d.taken_ns, f.mtime_ns) BETWEEN ? AND ?) "
    "AND (? IS NULL OR instr(lower(coalesce(d.camera, '')), ?) > 0) "
    "AND (? IS NULL OR instr(lower(CAST(f.dir AS TEXT)), ?) > 0) "
    "AND (? IS NULL OR CAST(strftime('%m', coalesce(d.taken_ns, f.mtime_ns) / 1000000000, "
    "'unixepoch') AS INTEGER) = ?) "
    # every facet token asked for (a JSON list; '[]': none) is one the image has
    "AND NOT EXISTS (SELECT 1 FROM json_each(?) w WHERE NOT EXISTS (SELECT 1 FROM "
    "facet_tokens t WHERE t.token = w.value AND t.file_id = f.id)) "
    "ORDER BY {order} LIMIT ?"
)
FILTER_ORDERS = {
    "date": "coalesce(d.taken_ns, f.mtime_ns) DESC, f.id",
    "oldest": "coalesce(d.taken_ns, f.mtime_ns), f.id",
    "name": "f.name, f.id",
    "size": "f.size DESC, f.id",
}
VECTORS_QUERY = "SELECT file_id, vector FROM vectors WHERE file_id IN ({marks}) AND embedder = ?"


def _stored_hit(row: tuple[Any, ...]) -> StoredHit:
    file_id, directory, name, seq, caption, size, time_ns, camera, facets = row
    # Most images have no facet: json.loads took 4 of the 7 us a row took (cProfile).
    tokens = frozenset(json.loads(facets)) if facets != "[]" else frozenset()
    return StoredHit(file_id, join_path(directory, name), seq, caption, size, time_ns, camera,
                     tokens)  # fmt: skip


class SearchReads:
    def __init__(self, connection: CatalogConnection) -> None:
        self._connection = connection

    def hits(
        self, file_ids: Collection[int], embedder: str, table: str = "vectors"
    ) -> dict[int, StoredHit]:
        """For search results: where each file is now, its caption and the sequence
        number of its current vector by `embedder` in `table` (one of VECTOR_TABLES;
        files without one are left out)."""
        assert table in VECTOR_TABLES
        found: dict[int, StoredHit] = {}
        ids = list(file_ids)
        with self._connection.own_read() as db:
            for start in range(0, len(ids), 500):  # SQLite's parameter limit
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    HITS_QUERY.format(table=table, marks=marks), (*chunk, embedder)
                ).fetchall()
                for row in rows:
                    found[row[0]] = _stored_hit(row)
        return found

    def filtered(
        self,
        embedder: str,
        time_range_ns: tuple[int, int] | None,
        camera: str | None,
        folder: str | None,
        order: str,
        limit: int,
        month: int | None = None,
        facets: Collection[str] = (),
    ) -> list[StoredHit]:
        """Indexed images matching the filters (None: any; `month` 1-12 of the photo's
        time; every one of the `facets` tokens), in `order` (FILTER_ORDERS)."""
        first, last = time_range_ns or (None, None)
        wanted = json.dumps(sorted(facets))
        with self._connection.own_read() as db:
            rows = db.execute(
                FILTERED_QUERY.format(order=FILTER_ORDERS[order]),
                (embedder, first, first, last, camera, camera, folder, folder, month, month,
                 wanted, limit),
            ).fetchall()  # fmt: skip
        return [_stored_hit(row) for row in rows]

    def keyword_counts(self, limit: int) -> list[tuple[str, int]]:
        """The keywords of described images with how many images have each, most first.
        (An image being ingested again still counts with its old keywords: counting only
        indexed ones would join every row with its file, ten times slower.)"""
        with self._connection.own_read() as db:
            rows = db.execute(
                "SELECT keyword, count(*) FROM keywords GROUP BY keyword "
                "ORDER BY count(*) DESC, keyword LIMIT ?",
                (limit,),
            ).fetchall()
        return [(str(value), int(count)) for value, count in rows]

    def with_keywords(self, keywords: list[str], embedder: str, limit: int) -> list[StoredHit]:
        """Indexed images that have every one of `keywords`, newest photo first."""
        wanted = sorted(set(keywords))
        with self._connection.own_read() as db:
            rows = db.execute(
                f"SELECT {HIT_COLUMNS} FROM files f JOIN descriptions d ON d.file_id = f.id "
                "JOIN vectors v ON v.file_id = f.id WHERE f.id IN (SELECT file_id FROM keywords "
                "WHERE keyword IN (SELECT value FROM json_each(?)) GROUP BY file_id "
                "HAVING count(*) = ?) AND f.state = 'indexed' AND +v.embedder = ? "
                "ORDER BY coalesce(d.taken_ns, f.mtime_ns) DESC, f.id LIMIT ?",
                (json.dumps(wanted), len(wanted), embedder, limit),
            ).fetchall()
        return [_stored_hit(row) for row in rows]

    def carrying(
        self, file_ids: Collection[int], keywords: Collection[str], words: Collection[str]
    ) -> set[int]:
        """Those of `file_ids` that have one of `keywords`, or whose text read in the
        image holds one of `words` as a word (the relevance cut's evidence). Each file's
        keywords are scanned in its index entries (`+keyword`: SQLite probing each pair of
        file and keyword took 16-29 ms for 200 files and 200 keywords at 1 M images, this
        0.5), and the texts are read only of the files no keyword found: at 1 M most
        of the 200 candidates have one, and reading a text costs a row of descriptions."""
        if not file_ids:
            return set()
        ids = sorted(file_ids)
        with self._connection.own_read() as db:
            found = {
                int(file_id)
                for (file_id,) in db.execute(
                    "SELECT file_id FROM keywords WHERE file_id IN "
                    "(SELECT value FROM json_each(?)) AND +keyword IN "
                    "(SELECT value FROM json_each(?))",
                    (json.dumps(ids), json.dumps(sorted(keywords))),
                )
            }
            rest = [file_id for file_id in ids if file_id not in found]
            texts = db.execute(
                "SELECT file_id, text FROM descriptions WHERE file_id IN "
                "(SELECT value FROM json_each(?)) AND text != ''",
                (json.dumps(rest),),
            ).fetchall() if words and rest else []  # fmt: skip
        wanted_words = {word.lower() for word in words}
        for file_id, text in texts:
            if wanted_words & set(text.lower().split()):
                found.add(int(file_id))
        return found

    def token_counts(self, prefix: str) -> list[tuple[str, int]]:
        """The facet tokens that start with `prefix` (e.g. "where:"), with how many
        images have each, most first (counted as keyword_counts counts)."""
        with self._connection.own_read() as db:
            rows = db.execute(
                "SELECT token, count(*) FROM facet_tokens WHERE token >= ? AND token < ? "
                "GROUP BY token ORDER BY count(*) DESC, token",
                (prefix, prefix + "\U0010ffff"),
            ).fetchall()
        return [(str(value), int(count)) for value, count in rows]

    def with_token(self, token: str, embedder: str, limit: int) -> list[StoredHit]:
        """Indexed images that have the facet token, newest photo first."""
        with self._connection.own_read() as db:
            rows = db.execute(
                f"SELECT {HIT_COLUMNS} FROM facet_tokens t JOIN files f ON f.id = t.file_id "
                "JOIN descriptions d ON d.file_id = f.id JOIN vectors v ON v.file_id = f.id "
                "WHERE t.token = ? AND f.state = 'indexed' AND +v.embedder = ? "
                "ORDER BY coalesce(d.taken_ns, f.mtime_ns) DESC, f.id LIMIT ?",
                (token, embedder, limit),
            ).fetchall()
        return [_stored_hit(row) for row in rows]

    def vectors_of(self, file_ids: Collection[int], embedder: str) -> dict[int, bytes]:
        """The current vectors by `embedder` of these files."""
        found: dict[int, bytes] = {}
        ids = list(file_ids)
        with self._connection.own_read() as db:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = db.execute(VECTORS_QUERY.format(marks=marks), (*chunk, embedder)).fetchall()
                found.update((file_id, bytes(vector)) for file_id, vector in rows)
        return found

    def vectors_since(
        self, embedder: str, after_seq: int, table: str = "vectors"
    ) -> Iterator[tuple[int, int, bytes]]:
        """(file id, seq, vector) of `embedder`'s vectors written after `after_seq`."""
        assert table in VECTOR_TABLES
        with self._connection.own_read() as db:
            rows = db.execute(
                VECTORS_SINCE_QUERY.format(table=table), (embedder, after_seq)
            ).fetchall()
        for file_id, seq, vector in rows:
            yield file_id, seq, bytes(vector)

    def vector_counts(
        self, embedder: str, up_to_seq: int, table: str = "vectors"
    ) -> tuple[int, int]:
        """How many of `embedder`'s vectors are at most / past `up_to_seq`."""
        assert table in VECTOR_TABLES
        with self._connection.own_read() as db:
            old, new = db.execute(
                VECTOR_COUNTS_QUERY.format(table=table), (up_to_seq, up_to_seq, embedder)
            ).fetchone()
        return int(old), int(new)

    # --- saved queries (search/'s directories) ---------------------------------------

    def description_of(self, path: bytes) -> StoredDescription | None:
        """The state, caption, keywords and text of the file at `path`, if it is catalogued."""
        with self._connection.own_read() as db:
            row = db.execute(
                "SELECT f.state, f.error, d.caption, d.keywords, d.text FROM files f "
                "LEFT JOIN descriptions d ON d.file_id = f.id WHERE f.dir = ? AND f.name = ?",
                split_path(path),
            ).fetchone()
        if row is None:
            return None
        state, error, caption, keywords, text = row
        return StoredDescription(
            FileState(state), error, caption, json.loads(keywords) if keywords else [], text
        )

    def save_query(self, query: bytes) -> None:
        with self._connection.write() as db:
            db.execute(
                "INSERT OR IGNORE INTO saved_queries (query, created_ns) VALUES (?, ?)",
                (query, time.time_ns()),
            )

    def remove_query(self, query: bytes) -> bool:
        with self._connection.write() as db:
            return db.execute("DELETE FROM saved_queries WHERE query = ?", (query,)).rowcount > 0

    def saved_queries(self) -> list[bytes]:
        with self._connection.own_read() as db:
            rows = db.execute("SELECT query FROM saved_queries ORDER BY created_ns")
            return [bytes(row[0]) for row in rows]
