"""The catalog's side of ingest and search: the queue as ingest consumes it, the
descriptions and vectors it writes, the checks search makes, and saved queries.

A mixin of `Catalog` (catalog.py), which owns the connection, its lock and transactions.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Collection, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from semfs.catalog.records import (
    FILE_COLUMNS,
    Description,
    FileState,
    QueueItem,
    StoredHit,
    file_record,
    join_path,
    split_path,
)

# "+v.embedder": without the plus, SQLite answers by scanning every vector of the
# embedder (index vectors_by_embedder) and joining files to it: 376 ms a search at 100 k
# images, seconds at 1 M (docs/benchmarks-search.md). With it, each id is looked up.
HIT_COLUMNS = (
    "f.id, f.dir, f.name, v.seq, coalesce(d.caption, ''), f.size, "
    "coalesce(d.taken_ns, f.mtime_ns), coalesce(d.camera, '')"
)
HITS_QUERY = (
    f"SELECT {HIT_COLUMNS} FROM files f "
    "JOIN {table} v ON v.file_id = f.id LEFT JOIN descriptions d ON d.file_id = f.id "
    "WHERE f.id IN ({marks}) AND +v.embedder = ?"
)
# The tables of vectors an index is built from: caption vectors (text search) and image
# features (search by example). Same columns; the only names spliced into their SQL.
VECTOR_TABLES = ("vectors", "image_vectors")
VECTORS_SINCE_QUERY = (
    "SELECT file_id, seq, vector FROM {table} WHERE embedder = ? AND seq > ? ORDER BY seq"
)
VECTOR_COUNTS_QUERY = (
    "SELECT count(*) FILTER (WHERE seq <= ?), count(*) FILTER (WHERE seq > ?) "
    "FROM {table} WHERE embedder = ?"
)
DELETE_VECTOR = "DELETE FROM {table} WHERE file_id = ?"
INSERT_VECTOR = "INSERT INTO {table} (file_id, embedder, vector) VALUES (?, ?, ?)"
# Indexed images by the query filters alone (no text): each filter is off when its
# parameter is NULL. `order` is one of FILTER_ORDERS.
FILTERED_QUERY = (
    f"SELECT {HIT_COLUMNS} FROM files f "
    "JOIN vectors v ON v.file_id = f.id LEFT JOIN descriptions d ON d.file_id = f.id "
    "WHERE f.state = 'indexed' AND +v.embedder = ? "
    "AND (? IS NULL OR coalesce(d.taken_ns, f.mtime_ns) BETWEEN ? AND ?) "
    "AND (? IS NULL OR instr(lower(coalesce(d.camera, '')), ?) > 0) "
    "AND (? IS NULL OR instr(lower(CAST(f.dir AS TEXT)), ?) > 0) "
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
    file_id, directory, name, seq, caption, size, time_ns, camera = row
    return StoredHit(file_id, join_path(directory, name), seq, caption, size, time_ns, camera)


class IngestRecords:
    _db: sqlite3.Connection  # GUARDED_BY(_lock)
    _lock: AbstractContextManager[Any]
    _path: Path

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # Catalog's

    # --- derived data: descriptions and vectors (written by ingest) -------------------

    def queue_items(self, limit: int, skip: Collection[int] = ()) -> list[QueueItem]:
        """The next `limit` queued files not in `skip`; files that failed before go last."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {FILE_COLUMNS}, enqueued_ns, attempts FROM ingest_queue "
                "JOIN files ON id = file_id ORDER BY attempts, enqueued_ns, id LIMIT ?",
                (limit + len(skip),),
            ).fetchall()
        items = [QueueItem(file_record(row[:8]), row[8], row[9]) for row in rows]
        return [item for item in items if item.record.id not in skip][:limit]

    def store_result(
        self, item: QueueItem, description: Description, embedder: str, vector: bytes
    ) -> int | None:
        """Save what ingest made of a queued file and take it off the queue, in one
        transaction. Returns the vector's sequence number, or None (and saves nothing)
        if the file changed or went away meanwhile: its newer version is queued anew."""
        with self._transaction() as db:
            if not _still_queued(db, item):
                return None
            db.execute(
                "INSERT OR REPLACE INTO descriptions (file_id, caption, source, captioner, "
                "keywords, taken_ns, camera) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    item.record.id,
                    description.caption,
                    description.source,
                    description.captioner,
                    json.dumps(description.keywords),
                    description.taken_ns,
                    description.camera,
                ),
            )
            seq = write_vector(db, item.record.id, embedder, vector)
            _dequeue(db, item.record.id, FileState.INDEXED, None)
            return seq

    def fail(self, item: QueueItem, reason: str) -> bool:
        """Record that a queued file cannot be ingested (a bad image) and why."""
        with self._transaction() as db:
            if not _still_queued(db, item):
                return False
            _dequeue(db, item.record.id, FileState.FAILED, reason)
            return True

    def retry_later(self, item: QueueItem, error: str, max_attempts: int) -> None:
        """An unexpected error: try again after the rest, up to `max_attempts` in all."""
        with self._transaction() as db:
            if not _still_queued(db, item):
                return
            if item.attempts + 1 >= max_attempts:
                _dequeue(db, item.record.id, FileState.FAILED, error)
            else:
                db.execute(
                    "UPDATE ingest_queue SET attempts = attempts + 1 WHERE file_id = ?",
                    (item.record.id,),
                )

    def reusable(self, content_hash: str, embedder: str) -> tuple[Description, bytes] | None:
        """Description and vector of another file with the same content (a copy), made
        by `embedder`, so a copy need not pass through the models again."""
        with self._lock:
            row = self._db.execute(
                "SELECT d.caption, d.source, d.captioner, d.keywords, d.taken_ns, d.camera, "
                "v.vector FROM files f "
                "JOIN descriptions d ON d.file_id = f.id JOIN vectors v ON v.file_id = f.id "
                "WHERE f.content_hash = ? AND v.embedder = ? AND d.source = 'model' LIMIT 1",
                (content_hash, embedder),
            ).fetchone()
        if row is None:
            return None
        caption, source, captioner, keywords, taken_ns, camera, vector = row
        description = Description(caption, source, captioner, json.loads(keywords), taken_ns,
                                  camera)  # fmt: skip
        return description, bytes(vector)

    def requeue(self, path: bytes) -> bool:
        """Ingest the file at `path` again (e.g. its user caption changed)."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT id FROM files WHERE dir = ? AND name = ?", split_path(path)
            ).fetchone()
            if row is None:
                return False
            requeue_file(db, row[0])
            return True

    def requeue_ids(self, file_ids: Collection[int]) -> None:
        """Derive these files anew: their caption and vector go, they are queued."""
        with self._transaction() as db:
            for file_id in file_ids:
                forget_derived(db, file_id)
                requeue_file(db, file_id)

    def hits(
        self, file_ids: Collection[int], embedder: str, table: str = "vectors"
    ) -> dict[int, StoredHit]:
        """For search results: where each file is now, its caption and the sequence
        number of its current vector by `embedder` in `table` (one of VECTOR_TABLES;
        files without one are left out)."""
        assert table in VECTOR_TABLES
        found: dict[int, StoredHit] = {}
        ids = list(file_ids)
        with self._lock:
            for start in range(0, len(ids), 500):  # SQLite's parameter limit
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
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
    ) -> list[StoredHit]:
        """Indexed images matching the filters (None: any), in `order` (FILTER_ORDERS)."""
        first, last = time_range_ns or (None, None)
        with self._lock:
            rows = self._db.execute(
                FILTERED_QUERY.format(order=FILTER_ORDERS[order]),
                (embedder, first, first, last, camera, camera, folder, folder, limit),
            ).fetchall()
        return [_stored_hit(row) for row in rows]

    def keyword_counts(self, limit: int) -> list[tuple[str, int]]:
        """The keywords of described images with how many images have each, most first.
        (An image being ingested again still counts with its old keywords: counting only
        indexed ones would join every row with its file, ten times slower.)"""
        with self._lock:
            rows = self._db.execute(
                "SELECT keyword, count(*) FROM keywords GROUP BY keyword "
                "ORDER BY count(*) DESC, keyword LIMIT ?",
                (limit,),
            ).fetchall()
        return [(str(value), int(count)) for value, count in rows]

    def with_keywords(self, keywords: list[str], embedder: str, limit: int) -> list[StoredHit]:
        """Indexed images that have every one of `keywords`, newest photo first."""
        wanted = sorted(set(keywords))
        with self._lock:
            rows = self._db.execute(
                f"SELECT {HIT_COLUMNS} FROM files f JOIN descriptions d ON d.file_id = f.id "
                "JOIN vectors v ON v.file_id = f.id WHERE f.id IN (SELECT file_id FROM keywords "
                "WHERE keyword IN (SELECT value FROM json_each(?)) GROUP BY file_id "
                "HAVING count(*) = ?) AND f.state = 'indexed' AND +v.embedder = ? "
                "ORDER BY coalesce(d.taken_ns, f.mtime_ns) DESC, f.id LIMIT ?",
                (json.dumps(wanted), len(wanted), embedder, limit),
            ).fetchall()
        return [_stored_hit(row) for row in rows]

    def described_after(self, file_id: int, limit: int) -> list[tuple[int, bytes]]:
        """(id, path) of described files after `file_id`, by id: the facts backfill."""
        with self._lock:
            rows = self._db.execute(
                "SELECT f.id, f.dir, f.name FROM files f JOIN descriptions d ON d.file_id = f.id "
                "WHERE f.id > ? ORDER BY f.id LIMIT ?",
                (file_id, limit),
            ).fetchall()
        return [(row[0], join_path(row[1], row[2])) for row in rows]

    def set_facts(self, facts: list[tuple[int, int | None, str | None]], done_to: int) -> None:
        """Store (id, taken_ns, camera) of described files; the backfill is done up to
        `done_to` (0: finished)."""
        with self._transaction() as db:
            db.executemany(
                "UPDATE descriptions SET taken_ns = ?, camera = ? WHERE file_id = ?",
                [(taken, camera, file_id) for file_id, taken, camera in facts],
            )
            if done_to:
                db.execute(
                    "UPDATE meta SET value = ? WHERE key = 'facts_backfilled_to'", (str(done_to),)
                )
            else:
                db.execute("DELETE FROM meta WHERE key = 'facts_backfilled_to'")

    def vectors_of(self, file_ids: Collection[int], embedder: str) -> dict[int, bytes]:
        """The current vectors by `embedder` of these files."""
        found: dict[int, bytes] = {}
        ids = list(file_ids)
        with self._lock:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    VECTORS_QUERY.format(marks=marks), (*chunk, embedder)
                ).fetchall()
                found.update((file_id, bytes(vector)) for file_id, vector in rows)
        return found

    def vectors_since(
        self, embedder: str, after_seq: int, table: str = "vectors"
    ) -> Iterator[tuple[int, int, bytes]]:
        """(file id, seq, vector) of `embedder`'s vectors written after `after_seq`."""
        assert table in VECTOR_TABLES
        with self._lock:
            rows = self._db.execute(
                VECTORS_SINCE_QUERY.format(table=table), (embedder, after_seq)
            ).fetchall()
        for file_id, seq, vector in rows:
            yield file_id, seq, bytes(vector)

    def vector_counts(
        self, embedder: str, up_to_seq: int, table: str = "vectors"
    ) -> tuple[int, int]:
        """How many of `embedder`'s vectors are at most / past `up_to_seq`."""
        assert table in VECTOR_TABLES
        with self._lock:
            old, new = self._db.execute(
                VECTOR_COUNTS_QUERY.format(table=table), (up_to_seq, up_to_seq, embedder)
            ).fetchone()
        return int(old), int(new)

    def captions_to_embed(self, embedder: str, limit: int) -> list[tuple[int, str]]:
        """Captions without a vector by `embedder` (after the embedder was switched)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT d.file_id, d.caption FROM descriptions d "
                "LEFT JOIN vectors v ON v.file_id = d.file_id "
                "WHERE v.embedder IS NULL OR v.embedder != ? ORDER BY d.file_id LIMIT ?",
                (embedder, limit),
            ).fetchall()
        return [(int(file_id), str(caption)) for file_id, caption in rows]

    def store_vectors(self, embedder: str, vectors: list[tuple[int, str, bytes]]) -> int:
        """Save (file id, caption, vector) rows made from stored captions, skipping files
        whose caption changed or that went away since it was read. Returns the count."""
        stored = 0
        with self._transaction() as db:
            for file_id, caption, vector in vectors:
                row = db.execute(
                    "SELECT caption FROM descriptions WHERE file_id = ?", (file_id,)
                ).fetchone()
                if row is not None and row[0] == caption:
                    write_vector(db, file_id, embedder, vector)
                    stored += 1
        return stored

    def requeue_ingest_errors(self) -> int:
        """Queue again the files that failed for no fault of theirs (a model error), so
        that a fixed configuration ingests them at the next start."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT id FROM files WHERE state = 'failed' AND error LIKE 'ingest error:%'"
            ).fetchall()
            for (file_id,) in rows:
                requeue_file(db, file_id)
            return len(rows)

    def failures(self, limit: int = 100) -> list[tuple[bytes, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT dir, name, coalesce(error, '') FROM files WHERE state = 'failed' "
                "ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        return [(join_path(directory, name), error) for directory, name, error in rows]

    # --- saved queries -----------------------------------------------------------------

    def save_query(self, query: bytes) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO saved_queries (query, created_ns) VALUES (?, ?)",
                (query, time.time_ns()),
            )

    def remove_query(self, query: bytes) -> bool:
        with self._transaction() as db:
            return db.execute("DELETE FROM saved_queries WHERE query = ?", (query,)).rowcount > 0

    def saved_queries(self) -> list[bytes]:
        with self._lock:
            rows = self._db.execute("SELECT query FROM saved_queries ORDER BY created_ns")
            return [bytes(row[0]) for row in rows]

    def open_reader(self) -> sqlite3.Connection:
        """A separate read-only connection, for long scans (an index rebuild) that must
        not hold the shared connection's lock."""
        return sqlite3.connect(f"file:{self._path}?mode=ro", uri=True, check_same_thread=False)


def enqueue(db: sqlite3.Connection, file_id: int) -> None:
    """Put a file on the ingest queue; a new enqueued_ns supersedes any entry a worker
    holds (its result is then dropped, see store_result)."""
    db.execute(
        "INSERT OR REPLACE INTO ingest_queue (file_id, enqueued_ns) VALUES (?, ?)",
        (file_id, time.time_ns()),
    )


def requeue_file(db: sqlite3.Connection, file_id: int) -> None:
    db.execute("UPDATE files SET state = 'queued', error = NULL WHERE id = ?", (file_id,))
    enqueue(db, file_id)


def forget_derived(db: sqlite3.Connection, file_id: int) -> None:
    db.execute("DELETE FROM descriptions WHERE file_id = ?", (file_id,))
    db.execute("DELETE FROM vectors WHERE file_id = ?", (file_id,))
    db.execute("DELETE FROM image_vectors WHERE file_id = ?", (file_id,))
    db.execute("DELETE FROM feature_queue WHERE file_id = ?", (file_id,))


def _still_queued(db: sqlite3.Connection, item: QueueItem) -> bool:
    row = db.execute(
        "SELECT enqueued_ns FROM ingest_queue WHERE file_id = ?", (item.record.id,)
    ).fetchone()
    return row is not None and row[0] == item.enqueued_ns


def _dequeue(db: sqlite3.Connection, file_id: int, state: FileState, error: str | None) -> None:
    db.execute("UPDATE files SET state = ?, error = ? WHERE id = ?", (state.value, error, file_id))
    db.execute("DELETE FROM ingest_queue WHERE file_id = ?", (file_id,))


def write_vector(
    db: sqlite3.Connection, file_id: int, embedder: str, vector: bytes, table: str = "vectors"
) -> int:
    """Store the file's vector in `table` (one of VECTOR_TABLES); its seq."""
    assert table in VECTOR_TABLES
    # Delete, then insert: the vector gets a new, higher seq, which tells the index
    # that any copy it holds of an older vector for this file is stale.
    db.execute(DELETE_VECTOR.format(table=table), (file_id,))
    cursor = db.execute(INSERT_VECTOR.format(table=table), (file_id, embedder, vector))
    assert cursor.lastrowid is not None
    return cursor.lastrowid
