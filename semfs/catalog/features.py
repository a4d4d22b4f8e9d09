"""The image-features queue, as ingest's features pass and the engine's conversion use
it: indexed images whose features (search by example) are to be computed, the vectors
stored for them, and converting stored features to another model's.

An image is queued by a trigger on descriptions (schema.py), so every described image
waits for its features once. Statements run under the shared connection's lock, writes
in one transaction each: see connection.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from semfs.catalog.connection import CatalogConnection
from semfs.catalog.queue import write_vector
from semfs.catalog.records import join_path


@dataclass(frozen=True)
class FeatureTask:
    """An indexed image waiting for its features; `generation` tells whether the image
    was described again while they were computed."""

    file_id: int
    generation: int
    path: bytes


class FeatureRecords:
    def __init__(self, connection: CatalogConnection) -> None:
        self._connection = connection

    def feature_tasks(self, limit: int) -> list[FeatureTask]:
        """Indexed images waiting for their features, oldest first."""
        with self._connection.read() as db:
            rows = db.execute(
                # CROSS JOIN: the queue drives the join, in its generation order (as
                # IngestQueue.queue_items; left to choose, SQLite scans every file).
                "SELECT q.file_id, q.generation, f.dir, f.name "
                "FROM feature_queue q CROSS JOIN files f ON f.id = q.file_id "
                "WHERE f.state = 'indexed' ORDER BY q.generation LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            FeatureTask(file_id, generation, join_path(directory, name))
            for file_id, generation, directory, name in rows
        ]

    def store_features(
        self, embedder: str, results: list[tuple[FeatureTask, bytes | None]]
    ) -> list[tuple[int, int]]:
        """Store each task's vector (None: the image cannot be read; it gets none) and
        take it off the queue, unless it was queued again meanwhile. Returns the (file
        id, seq) of the vectors stored."""
        stored = []
        with self._connection.write() as db:
            for task, vector in results:
                row = db.execute(
                    "SELECT generation FROM feature_queue WHERE file_id = ?", (task.file_id,)
                ).fetchone()
                if row is None or row[0] != task.generation:
                    continue  # described again since: its newer version is queued
                if (seq := _store_vector(db, embedder, task.file_id, vector)) is not None:
                    stored.append((task.file_id, seq))
        return stored

    def store_features_of_described(
        self, embedder: str, results: list[tuple[int, bytes]]
    ) -> list[tuple[int, int]]:
        """Store the vectors computed in the same pass as the descriptions just stored
        for these files (which queued them), and take them off the queue. Only ingest
        describes, one batch at a time, so a queued task is those descriptions'; a file
        whose task is gone changed meanwhile (its description was forgotten). Returns
        the (file id, seq) of the vectors stored."""
        stored = []
        with self._connection.write() as db:
            for file_id, vector in results:
                if not db.execute(
                    "SELECT 1 FROM feature_queue WHERE file_id = ?", (file_id,)
                ).fetchone():
                    continue
                if (seq := _store_vector(db, embedder, file_id, vector)) is not None:
                    stored.append((file_id, seq))
        return stored

    def image_vector_of_content(self, content_hash: str, embedder: str) -> bytes | None:
        """The features of another file with the same content (a copy has the same)."""
        with self._connection.read() as db:
            row = db.execute(
                "SELECT v.vector FROM files f JOIN image_vectors v ON v.file_id = f.id "
                "WHERE f.content_hash = ? AND v.embedder = ? LIMIT 1",
                (content_hash, embedder),
            ).fetchone()
        return None if row is None else bytes(row[0])

    def requeue_features_not_by(self, embedder: str) -> int:
        """Queue again the images whose features another model computed."""
        with self._connection.write() as db:
            return db.execute(
                "INSERT OR IGNORE INTO feature_queue (file_id, generation) "
                "SELECT file_id, (SELECT coalesce(max(generation), 0) + 1 FROM feature_queue) "
                "FROM image_vectors WHERE embedder != ?",
                (embedder,),
            ).rowcount

    def image_vectors_by(self, embedder: str, limit: int) -> list[tuple[int, bytes]]:
        """(file id, vector) of up to `limit` images whose features `embedder` made."""
        with self._connection.read() as db:
            rows = db.execute(
                "SELECT file_id, vector FROM image_vectors WHERE embedder = ? LIMIT ?",
                (embedder, limit),
            ).fetchall()
        return [(file_id, bytes(vector)) for file_id, vector in rows]

    def convert_image_vectors(
        self, old: str, new: str, rows: list[tuple[int, bytes]]
    ) -> list[tuple[int, int]]:
        """Replace features by `old` with the same features as `new` computes them, in
        one transaction; a file whose features changed meanwhile is left as it is.
        Returns (file id, seq) of those replaced."""
        stored = []
        with self._connection.write() as db:
            for file_id, vector in rows:
                current = db.execute(
                    "SELECT 1 FROM image_vectors WHERE file_id = ? AND embedder = ?",
                    (file_id, old),
                ).fetchone()
                if current is not None:
                    seq = write_vector(db, file_id, new, vector, "image_vectors")
                    stored.append((file_id, seq))
        return stored

    def convert_examples(self, old: str, new: str, convert: Callable[[bytes], bytes]) -> int:
        """Examples copied in whose features `old` made, converted to `new`'s."""
        with self._connection.write() as db:
            rows = db.execute(
                "SELECT name, vector FROM examples WHERE embedder = ? AND vector IS NOT NULL",
                (old,),
            ).fetchall()
            for name, vector in rows:
                db.execute(
                    "UPDATE examples SET embedder = ?, vector = ? WHERE name = ?",
                    (new, convert(bytes(vector)), name),
                )
        return len(rows)

    def feature_counts(self) -> tuple[int, int]:
        """(images with features, images waiting for them)."""
        with self._connection.read() as db:
            done, waiting = db.execute(
                "SELECT (SELECT count(*) FROM image_vectors), (SELECT count(*) FROM feature_queue)"
            ).fetchone()
        return int(done), int(waiting)


def _store_vector(
    db: sqlite3.Connection, embedder: str, file_id: int, vector: bytes | None
) -> int | None:
    """Take the file off the feature queue and store its vector, if any; its seq."""
    db.execute("DELETE FROM feature_queue WHERE file_id = ?", (file_id,))
    if vector is None:
        return None
    return write_vector(db, file_id, embedder, vector, "image_vectors")
