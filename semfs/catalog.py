"""The catalog: a versioned SQLite database of the store's image files and ingest queue.

Paths are store-relative and kept as bytes (BLOB), exactly as the filesystem has them,
so names that are not valid UTF-8 survive. A path is split into `dir` and `name` so that
a reconcile scan can compare one directory at a time, with memory bounded by the size of
a directory rather than of the collection.

Thread safety: one connection shared by the trio thread's helpers and worker threads;
every statement runs under `_lock`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from semfs.errors import QuietError


class FileState(StrEnum):
    QUEUED = "queued"  # waiting for the ingest stages (caption, embedding)
    INDEXED = "indexed"  # ingest finished
    FAILED = "failed"  # ingest gave up; `error` says why


@dataclass(frozen=True)
class FileRecord:
    id: int
    path: bytes
    size: int
    mtime_ns: int
    content_hash: str | None
    state: FileState
    error: str | None


@dataclass(frozen=True)
class CatalogStats:
    files: int
    indexed: int
    queued: int
    failed: int


@dataclass(frozen=True)
class QueueItem:
    record: FileRecord
    enqueued_ns: int  # identifies this version of the file in the queue
    attempts: int


@dataclass(frozen=True)
class Description:
    caption: str
    source: str  # user | exif | xmp | model
    captioner: str  # the model's name, or the source for user-given text
    keywords: list[str]


@dataclass(frozen=True)
class StoredHit:
    file_id: int
    path: bytes
    seq: int  # of the file's current vector
    caption: str


def split_path(path: bytes) -> tuple[bytes, bytes]:
    """b"a/b/c.jpg" -> (b"a/b", b"c.jpg"); a top-level file has dir b""."""
    head, _, tail = path.rpartition(b"/")
    return head, tail


def join_path(directory: bytes, name: bytes) -> bytes:
    return directory + b"/" + name if directory else name


def _subtree_bounds(directory: bytes) -> tuple[bytes, bytes]:
    """Blob range holding every dir strictly below `directory` ("/" is 0x2F, "0" 0x30)."""
    return directory + b"/", directory + b"0"


def _run_script(db: sqlite3.Connection, script: str) -> None:
    """Run `;`-separated statements inside the caller's transaction (executescript would
    commit it first)."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _migrate_to_1(db: sqlite3.Connection) -> None:
    _run_script(
        db,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE files (
            id INTEGER PRIMARY KEY,          -- stable: the vector index's item id, later
            dir BLOB NOT NULL,
            name BLOB NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            content_hash TEXT,               -- NULL until hashed
            state TEXT NOT NULL DEFAULT 'queued',
            error TEXT,
            UNIQUE (dir, name)
        );
        CREATE INDEX files_by_hash ON files (content_hash);
        CREATE TABLE ingest_queue (
            file_id INTEGER PRIMARY KEY REFERENCES files (id) ON DELETE CASCADE,
            enqueued_ns INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0
        );
        """,
    )


def _migrate_to_2(db: sqlite3.Connection) -> None:
    _run_script(
        db,
        """
        CREATE TABLE descriptions (
            file_id INTEGER PRIMARY KEY REFERENCES files (id) ON DELETE CASCADE,
            caption TEXT NOT NULL,
            source TEXT NOT NULL,            -- user | exif | xmp | model
            captioner TEXT NOT NULL,         -- the model that wrote it, or the source
            keywords TEXT NOT NULL           -- JSON list, best first
        );
        CREATE TABLE vectors (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- grows with every vector written
            file_id INTEGER NOT NULL UNIQUE REFERENCES files (id) ON DELETE CASCADE,
            embedder TEXT NOT NULL,
            vector BLOB NOT NULL             -- float32, unit length
        );
        CREATE INDEX vectors_by_embedder ON vectors (embedder, seq);
        CREATE TABLE saved_queries (
            query BLOB PRIMARY KEY,          -- the directory name under search/
            created_ns INTEGER NOT NULL
        );
        """,
    )


# MIGRATIONS[i] takes the schema from version i to i + 1. Append, never edit.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migrate_to_1, _migrate_to_2]
SCHEMA_VERSION = len(MIGRATIONS)

_FILE_COLUMNS = "id, dir, name, size, mtime_ns, content_hash, state, error"


def _record(row: tuple[int, bytes, bytes, int, int, str | None, str, str | None]) -> FileRecord:
    file_id, directory, name, size, mtime_ns, content_hash, state, error = row
    return FileRecord(
        file_id, join_path(directory, name), size, mtime_ns, content_hash, FileState(state), error
    )


def _forget_derived(db: sqlite3.Connection, file_id: int) -> None:
    db.execute("DELETE FROM descriptions WHERE file_id = ?", (file_id,))
    db.execute("DELETE FROM vectors WHERE file_id = ?", (file_id,))


def _move(
    db: sqlite3.Connection,
    old: bytes,
    new: bytes,
    size: int | None = None,
    mtime_ns: int | None = None,
) -> bool:
    row = db.execute(
        "SELECT id, size, mtime_ns FROM files WHERE dir = ? AND name = ?", split_path(old)
    ).fetchone()
    if row is None:
        return False
    file_id, old_size, old_mtime_ns = row
    db.execute("DELETE FROM files WHERE dir = ? AND name = ?", split_path(new))
    db.execute(
        "UPDATE files SET dir = ?, name = ?, size = ?, mtime_ns = ? WHERE id = ?",
        (
            *split_path(new),
            old_size if size is None else size,
            old_mtime_ns if mtime_ns is None else mtime_ns,
            file_id,
        ),
    )
    return True


def _move_tree(db: sqlite3.Connection, old_dir: bytes, new_dir: bytes) -> int:
    low, high = _subtree_bounds(old_dir)
    rows = db.execute(
        "SELECT id, dir FROM files WHERE dir = ? OR (dir >= ? AND dir < ?)", (old_dir, low, high)
    ).fetchall()
    db.executemany(
        "UPDATE files SET dir = ? WHERE id = ?",
        [(new_dir + directory[len(old_dir) :], file_id) for file_id, directory in rows],
    )
    return len(rows)


def _remove_tree(db: sqlite3.Connection, directory: bytes) -> int:
    low, high = _subtree_bounds(directory)
    cursor = db.execute(
        "DELETE FROM files WHERE dir = ? OR (dir >= ? AND dir < ?)", (directory, low, high)
    )
    return cursor.rowcount


class Catalog:
    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db  # GUARDED_BY(_lock)
        self._path = path
        self._lock = threading.RLock()

    @classmethod
    def open(cls, path: Path) -> Catalog:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across crashes
        db.execute("PRAGMA foreign_keys = ON")
        catalog = cls(db, path)
        catalog._migrate(path)
        return catalog

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate(self, path: Path) -> None:
        # Read the version without a write lock: opening the catalog (e.g. for
        # `semfs status`) must not hold up a mounted daemon's writes.
        if self.schema_version == SCHEMA_VERSION:
            return
        with self._transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise QuietError(
                    f"{path} has schema version {version}, newer than this semfs knows "
                    f"({SCHEMA_VERSION}); upgrade semfs"
                )
            for step in MIGRATIONS[version:]:
                step(db)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    # --- meta ----------------------------------------------------------------------

    def set_meta(self, key: str, value: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    # --- files ---------------------------------------------------------------------

    def get(self, path: bytes) -> FileRecord | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_FILE_COLUMNS} FROM files WHERE dir = ? AND name = ?", split_path(path)
            ).fetchone()
        return None if row is None else _record(row)

    def files_in_dir(self, directory: bytes) -> dict[bytes, FileRecord]:
        """The records directly inside `directory`, by name."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_FILE_COLUMNS} FROM files WHERE dir = ?", (directory,)
            ).fetchall()
        return {row[2]: _record(row) for row in rows}

    def directories(self) -> set[bytes]:
        with self._lock:
            return {row[0] for row in self._db.execute("SELECT DISTINCT dir FROM files")}

    def find_by_hash(self, content_hash: str) -> list[FileRecord]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_FILE_COLUMNS} FROM files WHERE content_hash = ?", (content_hash,)
            ).fetchall()
        return [_record(row) for row in rows]

    def upsert(self, path: bytes, size: int, mtime_ns: int, content_hash: str) -> bool:
        """Record the file at `path`; enqueue it if its content is new. True if enqueued."""
        directory, name = split_path(path)
        with self._transaction() as db:
            row = db.execute(
                "SELECT id, content_hash FROM files WHERE dir = ? AND name = ?", (directory, name)
            ).fetchone()
            if row is not None and row[1] == content_hash:
                db.execute(
                    "UPDATE files SET size = ?, mtime_ns = ? WHERE id = ?", (size, mtime_ns, row[0])
                )
                return False
            if row is None:
                file_id = db.execute(
                    "INSERT INTO files (dir, name, size, mtime_ns, content_hash) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (directory, name, size, mtime_ns, content_hash),
                ).lastrowid
            else:
                file_id = row[0]
                db.execute(
                    "UPDATE files SET size = ?, mtime_ns = ?, content_hash = ?, state = ?, "
                    "error = NULL WHERE id = ?",
                    (size, mtime_ns, content_hash, FileState.QUEUED.value, file_id),
                )
                _forget_derived(db, file_id)  # they describe the old content
            db.execute(
                "INSERT OR REPLACE INTO ingest_queue (file_id, enqueued_ns) VALUES (?, ?)",
                (file_id, time.time_ns()),
            )
            return True

    def move(
        self, old: bytes, new: bytes, size: int | None = None, mtime_ns: int | None = None
    ) -> bool:
        """Give the record at `old` the path `new`, keeping its id and derived data (and
        its size and mtime unless given: a rename changes neither).

        A record already at `new` (replaced by the move) is removed. False if `old` is
        not in the catalog.
        """
        with self._transaction() as db:
            return _move(db, old, new, size, mtime_ns)

    def move_tree(self, old_dir: bytes, new_dir: bytes) -> int:
        """Rewrite the paths of every record below directory `old_dir`. Returns the count."""
        with self._transaction() as db:
            return _move_tree(db, old_dir, new_dir)

    def rename_tree(self, old_dir: bytes, new_dir: bytes) -> int:
        """A directory was renamed over `new_dir` (absent or empty): records still under
        `new_dir` are stale and go; those below `old_dir` move. Returns the count moved."""
        with self._transaction() as db:
            _remove_tree(db, new_dir)
            return _move_tree(db, old_dir, new_dir)

    def swap(self, first: bytes, second: bytes) -> None:
        """`first` and `second` exchanged places (RENAME_EXCHANGE): swap the records at
        both paths and below them, in one transaction."""
        parking = b"\0swap/" + first  # no real path holds a NUL byte
        with self._transaction() as db:
            for old, new in ((first, parking), (second, first), (parking, second)):
                _move(db, old, new)
                _move_tree(db, old, new)

    def remove(self, path: bytes) -> bool:
        with self._transaction() as db:
            cursor = db.execute("DELETE FROM files WHERE dir = ? AND name = ?", split_path(path))
            return cursor.rowcount > 0

    def remove_ids(self, file_ids: list[int]) -> None:
        with self._transaction() as db:
            db.executemany("DELETE FROM files WHERE id = ?", [(i,) for i in file_ids])

    def remove_tree(self, directory: bytes) -> int:
        with self._transaction() as db:
            return _remove_tree(db, directory)

    def all_files(self) -> list[FileRecord]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_FILE_COLUMNS} FROM files ORDER BY id").fetchall()
        return [_record(row) for row in rows]

    # --- ingest queue (consumed by the ingest stages) -------------------------------

    def queued(self, limit: int) -> list[FileRecord]:
        """The oldest `limit` queued files, for an ingest worker."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_FILE_COLUMNS} FROM ingest_queue JOIN files ON id = file_id "
                "ORDER BY enqueued_ns, id LIMIT ?",
                (limit,),
            ).fetchall()
        return [_record(row) for row in rows]

    def finish(self, file_id: int, state: FileState, error: str | None = None) -> None:
        """Take a file off the queue with its outcome (indexed, or failed and why)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE files SET state = ?, error = ? WHERE id = ?", (state.value, error, file_id)
            )
            db.execute("DELETE FROM ingest_queue WHERE file_id = ?", (file_id,))

    def stats(self) -> CatalogStats:
        with self._lock:
            files, indexed, failed = self._db.execute(
                "SELECT count(*), count(*) FILTER (WHERE state = 'indexed'), "
                "count(*) FILTER (WHERE state = 'failed') FROM files"
            ).fetchone()
            queued = self._db.execute("SELECT count(*) FROM ingest_queue").fetchone()[0]
        return CatalogStats(files=files, indexed=indexed, queued=queued, failed=failed)

    # --- derived data: descriptions and vectors (written by ingest) -------------------

    def queue_items(self, limit: int, skip: Collection[int] = ()) -> list[QueueItem]:
        """The next `limit` queued files not in `skip`; files that failed before go last."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_FILE_COLUMNS}, enqueued_ns, attempts FROM ingest_queue "
                "JOIN files ON id = file_id ORDER BY attempts, enqueued_ns, id LIMIT ?",
                (limit + len(skip),),
            ).fetchall()
        items = [QueueItem(_record(row[:8]), row[8], row[9]) for row in rows]
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
                "keywords) VALUES (?, ?, ?, ?, ?)",
                (
                    item.record.id,
                    description.caption,
                    description.source,
                    description.captioner,
                    json.dumps(description.keywords),
                ),
            )
            seq = _write_vector(db, item.record.id, embedder, vector)
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
                "SELECT d.caption, d.source, d.captioner, d.keywords, v.vector FROM files f "
                "JOIN descriptions d ON d.file_id = f.id JOIN vectors v ON v.file_id = f.id "
                "WHERE f.content_hash = ? AND v.embedder = ? AND d.source = 'model' LIMIT 1",
                (content_hash, embedder),
            ).fetchone()
        if row is None:
            return None
        caption, source, captioner, keywords, vector = row
        return Description(caption, source, captioner, json.loads(keywords)), bytes(vector)

    def requeue(self, path: bytes) -> bool:
        """Ingest the file at `path` again (e.g. its user caption changed)."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT id FROM files WHERE dir = ? AND name = ?", split_path(path)
            ).fetchone()
            if row is None:
                return False
            db.execute("UPDATE files SET state = 'queued', error = NULL WHERE id = ?", (row[0],))
            db.execute(
                "INSERT OR REPLACE INTO ingest_queue (file_id, enqueued_ns) VALUES (?, ?)",
                (row[0], time.time_ns()),
            )
            return True

    def hits(self, file_ids: Collection[int], embedder: str) -> dict[int, StoredHit]:
        """For search results: where each file is now, its caption and the sequence
        number of its current vector by `embedder` (files without one are left out)."""
        found: dict[int, StoredHit] = {}
        ids = list(file_ids)
        with self._lock:
            for start in range(0, len(ids), 500):  # SQLite's parameter limit
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    "SELECT f.id, f.dir, f.name, v.seq, coalesce(d.caption, '') FROM files f "
                    "JOIN vectors v ON v.file_id = f.id "
                    "LEFT JOIN descriptions d ON d.file_id = f.id "
                    f"WHERE f.id IN ({marks}) AND v.embedder = ?",
                    (*chunk, embedder),
                ).fetchall()
                for file_id, directory, name, seq, caption in rows:
                    found[file_id] = StoredHit(file_id, join_path(directory, name), seq, caption)
        return found

    def vectors_since(self, embedder: str, after_seq: int) -> Iterator[tuple[int, int, bytes]]:
        """(file id, seq, vector) of `embedder`'s vectors written after `after_seq`."""
        with self._lock:
            rows = self._db.execute(
                "SELECT file_id, seq, vector FROM vectors WHERE embedder = ? AND seq > ? "
                "ORDER BY seq",
                (embedder, after_seq),
            ).fetchall()
        for file_id, seq, vector in rows:
            yield file_id, seq, bytes(vector)

    def vector_counts(self, embedder: str, up_to_seq: int) -> tuple[int, int]:
        """How many of `embedder`'s vectors are at most / past `up_to_seq`."""
        with self._lock:
            old, new = self._db.execute(
                "SELECT count(*) FILTER (WHERE seq <= ?), count(*) FILTER (WHERE seq > ?) "
                "FROM vectors WHERE embedder = ?",
                (up_to_seq, up_to_seq, embedder),
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
                    _write_vector(db, file_id, embedder, vector)
                    stored += 1
        return stored

    def requeue_ingest_errors(self) -> int:
        """Queue again the files that failed for no fault of theirs (a model error), so
        that a fixed configuration ingests them at the next start."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT id FROM files WHERE state = 'failed' AND error LIKE 'ingest error:%'"
            ).fetchall()
            now = time.time_ns()
            for (file_id,) in rows:
                db.execute(
                    "UPDATE files SET state = 'queued', error = NULL WHERE id = ?", (file_id,)
                )
                db.execute(
                    "INSERT OR REPLACE INTO ingest_queue (file_id, enqueued_ns) VALUES (?, ?)",
                    (file_id, now),
                )
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


def _still_queued(db: sqlite3.Connection, item: QueueItem) -> bool:
    row = db.execute(
        "SELECT enqueued_ns FROM ingest_queue WHERE file_id = ?", (item.record.id,)
    ).fetchone()
    return row is not None and row[0] == item.enqueued_ns


def _dequeue(db: sqlite3.Connection, file_id: int, state: FileState, error: str | None) -> None:
    db.execute("UPDATE files SET state = ?, error = ? WHERE id = ?", (state.value, error, file_id))
    db.execute("DELETE FROM ingest_queue WHERE file_id = ?", (file_id,))


def _write_vector(db: sqlite3.Connection, file_id: int, embedder: str, vector: bytes) -> int:
    # Delete, then insert: the vector gets a new, higher seq, which tells the index
    # that any copy it holds of an older vector for this file is stale.
    db.execute("DELETE FROM vectors WHERE file_id = ?", (file_id,))
    cursor = db.execute(
        "INSERT INTO vectors (file_id, embedder, vector) VALUES (?, ?, ?)",
        (file_id, embedder, vector),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid
