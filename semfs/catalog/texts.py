"""The text queue, as ingest's idle text pass uses it: described images whose words
(OCR, semfs/ingest/texts.py) are to be read, and storing what was read with the caption
and caption vector it changes.

An image is queued by a trigger on descriptions (schema.py, version 7), so every
described image waits to be read once; a `generation` tells whether it was described
again while it was read. Statements run under the shared connection's lock, writes in
one transaction each: see connection.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from semfs.catalog.connection import CatalogConnection
from semfs.catalog.queue import write_vector
from semfs.catalog.records import join_path


@dataclass(frozen=True)
class TextTask:
    """A described image waiting to be read, with the description read with it."""

    file_id: int
    generation: int
    path: bytes
    caption: str
    source: str  # "user": a caption a person set, left as written
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class TextResult:
    """What the text pass found for a task: the words (may be ""), and, when they change
    the caption, the new caption and its vector."""

    task: TextTask
    text: str
    keywords: tuple[str, ...] | None = None  # None: unchanged
    caption: str | None = None  # None: unchanged
    vector: bytes | None = None  # the new caption's, by `embedder`


class TextRecords:
    def __init__(self, connection: CatalogConnection) -> None:
        self._connection = connection

    def text_tasks(self, limit: int) -> list[TextTask]:
        """Indexed images waiting to be read, oldest first."""
        with self._connection.read() as db:
            rows = db.execute(
                # CROSS JOIN: the queue drives the join, in its generation order. Left to
                # choose, SQLite scanned every file: 10 ms a call at 100 k files with the
                # queue empty, every IDLE_POLL, taking a core from the searches.
                "SELECT q.file_id, q.generation, f.dir, f.name, d.caption, d.source, d.keywords "
                "FROM text_queue q CROSS JOIN files f ON f.id = q.file_id "
                "JOIN descriptions d ON d.file_id = q.file_id "
                "WHERE f.state = 'indexed' ORDER BY q.generation LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            TextTask(
                file_id,
                generation,
                join_path(directory, name),
                caption,
                source,
                tuple(json.loads(keywords or "[]")),
            )
            for file_id, generation, directory, name, caption, source, keywords in rows
        ]

    def store_texts(self, embedder: str, results: list[TextResult]) -> list[tuple[int, int]]:
        """Store each image's words (and its new caption, keywords and caption vector)
        and take it off the queue, unless it was described again meanwhile (its newer
        version is queued). Returns the (file id, seq) of the caption vectors written,
        for the index."""
        written = []
        with self._connection.write() as db:
            for result in results:
                task = result.task
                row = db.execute(
                    "SELECT generation FROM text_queue WHERE file_id = ?", (task.file_id,)
                ).fetchone()
                if row is None or row[0] != task.generation:
                    continue
                db.execute("DELETE FROM text_queue WHERE file_id = ?", (task.file_id,))
                db.execute(
                    "UPDATE descriptions SET text = ? WHERE file_id = ?",
                    (result.text, task.file_id),
                )
                if result.keywords is not None:
                    db.execute(
                        "UPDATE descriptions SET keywords = ? WHERE file_id = ?",
                        (json.dumps(list(result.keywords)), task.file_id),
                    )
                if result.caption is not None and result.vector is not None:
                    db.execute(
                        "UPDATE descriptions SET caption = ? WHERE file_id = ?",
                        (result.caption, task.file_id),
                    )
                    seq = write_vector(db, task.file_id, embedder, result.vector)
                    written.append((task.file_id, seq))
        return written

    def text_counts(self) -> tuple[int, int]:
        """(images read, images waiting to be read)."""
        with self._connection.read() as db:
            done, waiting = db.execute(
                "SELECT (SELECT count(*) FROM descriptions WHERE text IS NOT NULL), "
                "(SELECT count(*) FROM text_queue)"
            ).fetchone()
        return int(done), int(waiting)
