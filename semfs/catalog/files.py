"""The catalog's file records, as the change tracker and reconcile keep them in step
with the store: look-ups by path and directory, and the writes a change makes.

Paths are store-relative and kept as bytes (BLOB), exactly as the filesystem has them,
so names that are not valid UTF-8 survive. A path is split into `dir` and `name` so that
a reconcile scan can compare one directory at a time, with memory bounded by the size of
a directory rather than of the collection.

Statements run under the shared connection's lock, writes in one transaction each: see
connection.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from semfs.catalog.connection import CatalogConnection
from semfs.catalog.queue import enqueue, forget_derived
from semfs.catalog.records import FILE_COLUMNS, FileRecord, FileState, file_record, split_path


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


class FileRecords:
    def __init__(self, connection: CatalogConnection) -> None:
        self._connection = connection

    def get(self, path: bytes) -> FileRecord | None:
        with self._connection.read() as db:
            row = db.execute(
                f"SELECT {FILE_COLUMNS} FROM files WHERE dir = ? AND name = ?", split_path(path)
            ).fetchone()
        return None if row is None else file_record(row)

    def files_in_dir(self, directory: bytes) -> dict[bytes, FileRecord]:
        """The records directly inside `directory`, by name."""
        with self._connection.read() as db:
            rows = db.execute(
                f"SELECT {FILE_COLUMNS} FROM files WHERE dir = ?", (directory,)
            ).fetchall()
        return {row[2]: file_record(row) for row in rows}

    def directories(self) -> set[bytes]:
        with self._connection.read() as db:
            return {row[0] for row in db.execute("SELECT DISTINCT dir FROM files")}

    def find_by_hash(self, content_hash: str) -> list[FileRecord]:
        with self._connection.read() as db:
            rows = db.execute(
                f"SELECT {FILE_COLUMNS} FROM files WHERE content_hash = ?", (content_hash,)
            ).fetchall()
        return [file_record(row) for row in rows]

    def upsert(self, path: bytes, size: int, mtime_ns: int, content_hash: str) -> bool:
        """Record the file at `path`; enqueue it if its content is new. True if enqueued."""
        directory, name = split_path(path)
        with self._connection.write() as db:
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
        with self._connection.write() as db:
            return _move(db, old, new, size, mtime_ns)

    def move_tree(self, old_dir: bytes, new_dir: bytes) -> int:
        """Rewrite the paths of every record below directory `old_dir`. Returns the count."""
        with self._connection.write() as db:
            return _move_tree(db, old_dir, new_dir)

    def rename_tree(self, old_dir: bytes, new_dir: bytes) -> int:
        """A directory was renamed over `new_dir` (absent or empty): records still under
        `new_dir` are stale and go; those below `old_dir` move. Returns the count moved."""
        with self._connection.write() as db:
            _remove_tree(db, new_dir)
            return _move_tree(db, old_dir, new_dir)

    def swap(self, first: bytes, second: bytes, stale: Sequence[bytes] = ()) -> None:
        """`first` and `second` exchanged places (RENAME_EXCHANGE): swap the records at
        both paths and below them, and drop the records at the `stale` ones (no longer
        an image there), in one transaction: no reader sees a record in between."""
        parking = b"\0swap/" + first  # no real path holds a NUL byte
        with self._connection.write() as db:
            for old, new in ((first, parking), (second, first), (parking, second)):
                _move(db, old, new)
                _move_tree(db, old, new)
            for path in stale:
                db.execute("DELETE FROM files WHERE dir = ? AND name = ?", split_path(path))

    def remove(self, path: bytes) -> bool:
        with self._connection.write() as db:
            cursor = db.execute("DELETE FROM files WHERE dir = ? AND name = ?", split_path(path))
            return cursor.rowcount > 0

    def remove_ids(self, file_ids: list[int]) -> None:
        with self._connection.write() as db:
            db.executemany("DELETE FROM files WHERE id = ?", [(i,) for i in file_ids])

    def remove_tree(self, directory: bytes) -> int:
        with self._connection.write() as db:
            return _remove_tree(db, directory)

    def all_files(self) -> list[FileRecord]:
        with self._connection.read() as db:
            rows = db.execute(f"SELECT {FILE_COLUMNS} FROM files ORDER BY id").fetchall()
        return [file_record(row) for row in rows]
