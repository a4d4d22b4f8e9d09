"""The catalog: a versioned SQLite database of the store's image files, their ingest,
what ingest derived from them and what search reads.

`Catalog` is the composition root: it opens the one connection (connection.py, which
also states the transaction discipline every catalog module follows), brings the schema
up to date (schema.py), and hands each group of callers its own narrow surface:

    catalog.files     files.py     the change tracker and reconcile: file records
    catalog.queue     queue.py     ingest: the queue, descriptions, caption vectors
    catalog.features  features.py  ingest's features pass, the engine's conversion
    catalog.texts     texts.py     ingest's idle text (OCR) pass
    catalog.reads     reads.py     search and the views: hits, filters, saved queries
    catalog.examples  examples.py  similar/: the examples saved there

What is catalog-wide stays here: the meta values, the counts, the schema version, the
long scans' reader and closing. The values it deals in are in records.py.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from semfs.catalog.connection import CatalogConnection
from semfs.catalog.examples import Examples
from semfs.catalog.features import FeatureRecords
from semfs.catalog.files import FileRecords
from semfs.catalog.queue import IngestQueue
from semfs.catalog.reads import SearchReads
from semfs.catalog.records import (
    CatalogStats,
    Description,
    FileRecord,
    FileState,
    QueueItem,
    StoredHit,
    join_path,
    split_path,
)
from semfs.catalog.schema import MIGRATIONS, SCHEMA_VERSION
from semfs.catalog.texts import TextRecords
from semfs.errors import QuietError

__all__ = [
    "MIGRATIONS", "SCHEMA_VERSION", "Catalog", "CatalogStats", "Description", "FileRecord",
    "FileState", "QueueItem", "StoredHit", "join_path", "split_path",
]  # fmt: skip


class Catalog:
    def __init__(self, connection: CatalogConnection) -> None:
        self._connection = connection
        self.files = FileRecords(connection)
        self.queue = IngestQueue(connection)
        self.features = FeatureRecords(connection)
        self.texts = TextRecords(connection)
        self.reads = SearchReads(connection)
        self.examples = Examples(connection)

    @classmethod
    def open(cls, path: Path) -> Catalog:
        catalog = cls(CatalogConnection.open(path))
        catalog._migrate(path)
        return catalog

    def close(self) -> None:
        self._connection.close()

    def open_reader(self) -> sqlite3.Connection:
        """A separate read-only connection, for long scans (an index rebuild) that must
        not hold the shared connection's lock."""
        return self._connection.open_reader()

    def _migrate(self, path: Path) -> None:
        # Read the version without a write lock: opening the catalog (e.g. for
        # `semfs status`) must not hold up a mounted daemon's writes.
        if self.schema_version == SCHEMA_VERSION:
            return
        with self._connection.write() as db:
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
        with self._connection.read() as db:
            return int(db.execute("PRAGMA user_version").fetchone()[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._connection.write() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def get_meta(self, key: str) -> str | None:
        with self._connection.read() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def stats(self) -> CatalogStats:
        with self._connection.read() as db:
            files, indexed, failed = db.execute(
                "SELECT count(*), count(*) FILTER (WHERE state = 'indexed'), "
                "count(*) FILTER (WHERE state = 'failed') FROM files"
            ).fetchone()
            queued = db.execute("SELECT count(*) FROM ingest_queue").fetchone()[0]
        return CatalogStats(files=files, indexed=indexed, queued=queued, failed=failed)
