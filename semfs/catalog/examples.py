"""The examples saved under similar/ (search by example): each is a stored image, or
the features of an image copied in; and the look-ups that make one.

Statements run under the shared connection's lock, writes in one transaction each: see
connection.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from semfs.catalog.connection import CatalogConnection
from semfs.catalog.records import join_path


@dataclass(frozen=True)
class Example:
    """A directory under similar/: a stored image, or the features of one copied in."""

    name: bytes
    file_id: int | None
    embedder: str | None
    vector: bytes | None


class Examples:
    def __init__(self, connection: CatalogConnection) -> None:
        self._connection = connection

    def save_example(
        self, name: bytes, file_id: int | None, embedder: str | None, vector: bytes | None
    ) -> None:
        with self._connection.write() as db:
            db.execute(
                "INSERT OR REPLACE INTO examples (name, file_id, embedder, vector, created_ns) "
                "VALUES (?, ?, ?, ?, ?)",
                (name, file_id, embedder, vector, time.time_ns()),
            )

    def remove_example(self, name: bytes) -> bool:
        with self._connection.write() as db:
            return db.execute("DELETE FROM examples WHERE name = ?", (name,)).rowcount > 0

    def examples(self) -> list[Example]:
        with self._connection.read() as db:
            rows = db.execute(
                "SELECT name, file_id, embedder, vector FROM examples ORDER BY created_ns"
            ).fetchall()
        return [
            Example(bytes(name), file_id, embedder, None if vector is None else bytes(vector))
            for name, file_id, embedder, vector in rows
        ]

    def image_vector_of(self, file_id: int, embedder: str) -> bytes | None:
        with self._connection.read() as db:
            row = db.execute(
                "SELECT vector FROM image_vectors WHERE file_id = ? AND embedder = ?",
                (file_id, embedder),
            ).fetchone()
        return None if row is None else bytes(row[0])

    def indexed_named(self, name: bytes) -> list[tuple[int, bytes]]:
        """(id, path) of the indexed images called `name` (in any folder), oldest first."""
        with self._connection.read() as db:
            rows = db.execute(
                "SELECT id, dir, name FROM files WHERE name = ? AND state = 'indexed' ORDER BY id",
                (name,),
            ).fetchall()
        return [(file_id, join_path(directory, base)) for file_id, directory, base in rows]
