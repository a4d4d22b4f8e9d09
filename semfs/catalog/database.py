"""The catalog: a versioned SQLite database of the store's image files and ingest queue.

Paths are store-relative and kept as bytes (BLOB), exactly as the filesystem has them,
so names that are not valid UTF-8 survive. A path is split into `dir` and `name` so that
a reconcile scan can compare one directory at a time, with memory bounded by the size of
a directory rather than of the collection.

Thread safety: one connection shared by the trio thread's helpers and worker threads;
every statement runs under `_lock`.

This module holds the files, the queue's producer side and transactions; the schema is
in catalog_schema.py, the values in catalog_records.py, and what ingest and search
read and write (descriptions, vectors, saved queries) in catalog_ingest.py.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from semfs.catalog.images import ImageRecords
from semfs.catalog.queue import IngestRecords, enqueue, forget_derived
from semfs.catalog.records import (
    FILE_COLUMNS,
    CatalogStats,
    Description,
    FileRecord,
    FileState,
    QueueItem,
    StoredHit,
    file_record,
    join_path,
    split_path,
)
from semfs.catalog.schema import MIGRATIONS, SCHEMA_VERSION
from semfs.errors import QuietError

__all__ = [
    "MIGRATIONS", "SCHEMA_VERSION", "Catalog", "CatalogStats", "Description", "FileRecord",
    "FileState", "QueueItem", "StoredHit", "join_path", "split_path",
]  # fmt: skip


def _subtree_bounds(directory: bytes) -> tuple[bytes, bytes]:
    """Blob range holding every dir strictly below `directory` ("/" is 0x2F, "0" 0x30)."""
    return directory + b"/", directory + b"0"


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


class Catalog(IngestRecords, ImageRecords):
    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db  # GUARDED_BY(_lock)
        self._path = path
        self._lock = threading.RLock()

    @classmethod
    def open(cls, path: Path) -> Catalog:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Private from the start (SQLite would make it 0644, and its -wal and -shm
        # files take the database file's mode). Only when new: closing a descriptor of
        # a database this process has open would drop that connection's POSIX locks.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_CLOEXEC, 0o600))
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
                f"SELECT {FILE_COLUMNS} FROM files WHERE dir = ? AND name = ?", split_path(path)
            ).fetchone()
        return None if row is None else file_record(row)

    def path_of(self, file_id: int) -> bytes | None:
        """Where the file with this id is now, if it is still catalogued."""
        with self._lock:
            row = self._db.execute(
                "SELECT dir, name FROM files WHERE id = ?", (file_id,)
            ).fetchone()
        return None if row is None else join_path(row[0], row[1])

    def files_in_dir(self, directory: bytes) -> dict[bytes, FileRecord]:
        """The records directly inside `directory`, by name."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {FILE_COLUMNS} FROM files WHERE dir = ?", (directory,)
            ).fetchall()
        return {row[2]: file_record(row) for row in rows}

    def directories(self) -> set[bytes]:
        with self._lock:
            return {row[0] for row in self._db.execute("SELECT DISTINCT dir FROM files")}

    def find_by_hash(self, content_hash: str) -> list[FileRecord]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {FILE_COLUMNS} FROM files WHERE content_hash = ?", (content_hash,)
            ).fetchall()
        return [file_record(row) for row in rows]

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
                forget_derived(db, file_id)  # they describe the old content
            assert file_id is not None  # lastrowid of an INSERT
            enqueue(db, file_id)
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

    def swap(self, first: bytes, second: bytes, stale: Sequence[bytes] = ()) -> None:
        """`first` and `second` exchanged places (RENAME_EXCHANGE): swap the records at
        both paths and below them, and drop the records at the `stale` ones (no longer
        an image there), in one transaction: no reader sees a record in between."""
        parking = b"\0swap/" + first  # no real path holds a NUL byte
        with self._transaction() as db:
            for old, new in ((first, parking), (second, first), (parking, second)):
                _move(db, old, new)
                _move_tree(db, old, new)
            for path in stale:
                db.execute("DELETE FROM files WHERE dir = ? AND name = ?", split_path(path))

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
            rows = self._db.execute(f"SELECT {FILE_COLUMNS} FROM files ORDER BY id").fetchall()
        return [file_record(row) for row in rows]

    # --- ingest queue (consumed by the ingest stages) -------------------------------

    def queued(self, limit: int) -> list[FileRecord]:
        """The oldest `limit` queued files, for an ingest worker."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {FILE_COLUMNS} FROM ingest_queue JOIN files ON id = file_id "
                "ORDER BY enqueued_ns, id LIMIT ?",
                (limit,),
            ).fetchall()
        return [file_record(row) for row in rows]

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
