"""The ingest queue as ingest consumes it: the next files to describe, the
descriptions and caption vectors it stores, its failures and retries, the facts
backfill, and re-embedding stored captions with a new embedder. (The producer side,
a file whose content is new, is `FileRecords.upsert`, through `enqueue` here.)

Statements run under the shared connection's lock, writes in one transaction each: see
connection.py.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Collection

from semfs.catalog.connection import CatalogConnection
from semfs.catalog.records import (
    FILE_COLUMNS,
    VECTOR_TABLES,
    Description,
    FileRecord,
    FileState,
    QueueItem,
    file_record,
    join_path,
    split_path,
)

DELETE_VECTOR = "DELETE FROM {table} WHERE file_id = ?"
INSERT_VECTOR = "INSERT INTO {table} (file_id, embedder, vector) VALUES (?, ?, ?)"


class IngestQueue:
    def __init__(self, connection: CatalogConnection) -> None:
        self._connection = connection

    def queued(self, limit: int) -> list[FileRecord]:
        """The oldest `limit` queued files, for an ingest worker."""
        with self._connection.read() as db:
            rows = db.execute(
                f"SELECT {FILE_COLUMNS} FROM ingest_queue CROSS JOIN files ON id = file_id "
                "ORDER BY enqueued_ns, id LIMIT ?",  # the queue drives it (queue_items)
                (limit,),
            ).fetchall()
        return [file_record(row) for row in rows]

    def finish(self, file_id: int, state: FileState, error: str | None = None) -> None:
        """Take a file off the queue with its outcome (indexed, or failed and why)."""
        with self._connection.write() as db:
            db.execute(
                "UPDATE files SET state = ?, error = ? WHERE id = ?", (state.value, error, file_id)
            )
            db.execute("DELETE FROM ingest_queue WHERE file_id = ?", (file_id,))

    def path_of(self, file_id: int) -> bytes | None:
        """Where the file with this id is now, if it is still catalogued (a queued file
        that could not be opened may have been moved or removed meanwhile)."""
        with self._connection.read() as db:
            row = db.execute("SELECT dir, name FROM files WHERE id = ?", (file_id,)).fetchone()
        return None if row is None else join_path(row[0], row[1])

    def queue_items(self, limit: int, skip: Collection[int] = ()) -> list[QueueItem]:
        """The next `limit` queued files not in `skip`; files that failed before go last."""
        with self._connection.read() as db:
            rows = db.execute(
                # CROSS JOIN: the queue drives the join. Left to choose, SQLite scanned
                # every file and probed the queue, 12 ms a call at 100 k files with the
                # queue empty, under the shared lock (docs/benchmarks-search.md).
                f"SELECT {FILE_COLUMNS}, enqueued_ns, attempts FROM ingest_queue "
                "CROSS JOIN files ON id = file_id ORDER BY attempts, enqueued_ns, id LIMIT ?",
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
        with self._connection.write() as db:
            if not _still_queued(db, item):
                return None
            db.execute(
                "INSERT OR REPLACE INTO descriptions (file_id, caption, source, captioner, "
                "keywords, taken_ns, camera, facets) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    item.record.id,
                    description.caption,
                    description.source,
                    description.captioner,
                    json.dumps(description.keywords),
                    description.taken_ns,
                    description.camera,
                    json.dumps(description.facets),
                ),
            )
            seq = write_vector(db, item.record.id, embedder, vector)
            _dequeue(db, item.record.id, FileState.INDEXED, None)
            return seq

    def fail(self, item: QueueItem, reason: str) -> bool:
        """Record that a queued file cannot be ingested (a bad image) and why."""
        with self._connection.write() as db:
            if not _still_queued(db, item):
                return False
            _dequeue(db, item.record.id, FileState.FAILED, reason)
            return True

    def retry_later(self, item: QueueItem, error: str, max_attempts: int) -> None:
        """An unexpected error: try again after the rest, up to `max_attempts` in all."""
        with self._connection.write() as db:
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
        with self._connection.read() as db:
            row = db.execute(
                "SELECT d.caption, d.source, d.captioner, d.keywords, d.taken_ns, d.camera, "
                "coalesce(d.facets, '[]'), v.vector FROM files f "
                "JOIN descriptions d ON d.file_id = f.id JOIN vectors v ON v.file_id = f.id "
                "WHERE f.content_hash = ? AND v.embedder = ? AND d.source LIKE 'model%' LIMIT 1",
                (content_hash, embedder),
            ).fetchone()
        if row is None:
            return None
        caption, source, captioner, keywords, taken_ns, camera, facets, vector = row
        description = Description(caption, source, captioner, json.loads(keywords), taken_ns,
                                  camera, json.loads(facets))  # fmt: skip
        return description, bytes(vector)

    def requeue(self, path: bytes) -> bool:
        """Ingest the file at `path` again (e.g. its user caption changed)."""
        with self._connection.write() as db:
            row = db.execute(
                "SELECT id FROM files WHERE dir = ? AND name = ?", split_path(path)
            ).fetchone()
            if row is None:
                return False
            requeue_file(db, row[0])
            return True

    def requeue_ids(self, file_ids: Collection[int]) -> None:
        """Derive these files anew: their caption and vector go, they are queued."""
        with self._connection.write() as db:
            for file_id in file_ids:
                forget_derived(db, file_id)
                requeue_file(db, file_id)

    def described_after(self, file_id: int, limit: int) -> list[tuple[int, bytes]]:
        """(id, path) of described files after `file_id`, by id: the facts backfill."""
        with self._connection.read() as db:
            rows = db.execute(
                "SELECT f.id, f.dir, f.name FROM files f JOIN descriptions d ON d.file_id = f.id "
                "WHERE f.id > ? ORDER BY f.id LIMIT ?",
                (file_id, limit),
            ).fetchall()
        return [(row[0], join_path(row[1], row[2])) for row in rows]

    def set_facts(
        self, facts: list[tuple[int, int | None, str | None, list[str]]], done_to: int
    ) -> None:
        """Store (id, taken_ns, camera, facet tokens) of described files; the backfill is
        done up to `done_to` (0: finished). Facet tokens are set only where the file has
        none yet (NULL): one ingested since has its own, colours included."""
        with self._connection.write() as db:
            db.executemany(
                "UPDATE descriptions SET taken_ns = ?, camera = ?, "
                "facets = coalesce(facets, ?) WHERE file_id = ?",
                [(taken, camera, json.dumps(tokens), file_id)
                 for file_id, taken, camera, tokens in facts],
            )  # fmt: skip
            if done_to:
                db.execute(
                    "UPDATE meta SET value = ? WHERE key = 'facts_backfilled_to'", (str(done_to),)
                )
            else:
                db.execute("DELETE FROM meta WHERE key = 'facts_backfilled_to'")

    def captions_to_embed(self, embedder: str, limit: int) -> list[tuple[int, str]]:
        """Captions without a vector by `embedder` (after the embedder was switched)."""
        with self._connection.read() as db:
            rows = db.execute(
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
        with self._connection.write() as db:
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
        with self._connection.write() as db:
            rows = db.execute(
                "SELECT id FROM files WHERE state = 'failed' AND error LIKE 'ingest error:%'"
            ).fetchall()
            for (file_id,) in rows:
                requeue_file(db, file_id)
            return len(rows)

    def failures(self, limit: int = 100) -> list[tuple[bytes, str]]:
        with self._connection.read() as db:
            rows = db.execute(
                "SELECT dir, name, coalesce(error, '') FROM files WHERE state = 'failed' "
                "ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        return [(join_path(directory, name), error) for directory, name, error in rows]


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
