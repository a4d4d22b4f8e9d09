"""The catalog's schema: one migration per version, applied in order, never edited."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable


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


def _migrate_to_3(db: sqlite3.Connection) -> None:
    # Facts for the query filters (year:, camera:), read from EXIF at ingest: when the
    # photo was taken (DateTimeOriginal, as UTC ns) and the camera (Make and Model). Images
    # described before are read by ingest when idle, by id (meta facts_backfilled_to).
    _run_script(
        db,
        """
        ALTER TABLE descriptions ADD COLUMN taken_ns INTEGER;
        ALTER TABLE descriptions ADD COLUMN camera TEXT;
        INSERT OR REPLACE INTO meta (key, value) VALUES ('facts_backfilled_to', '0')
        """,
    )


def _migrate_to_4(db: sqlite3.Connection) -> None:
    # Each image's keywords as rows, for the tags view: an index finds the images of a
    # keyword without reading every description. Triggers keep it equal to the
    # descriptions' JSON lists, whoever writes them (ingest, repair's salvage). An
    # INSERT OR REPLACE does not fire delete triggers, so the insert trigger clears first.
    _run_script(
        db,
        """
        CREATE TABLE keywords (
            keyword TEXT NOT NULL,
            file_id INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
            PRIMARY KEY (keyword, file_id)
        ) WITHOUT ROWID;
        CREATE INDEX keywords_by_file ON keywords (file_id);
        INSERT OR IGNORE INTO keywords (keyword, file_id)
            SELECT j.value, d.file_id FROM descriptions d, json_each(d.keywords) j
        """,
    )
    db.execute(
        "CREATE TRIGGER keywords_on_insert AFTER INSERT ON descriptions BEGIN "
        "DELETE FROM keywords WHERE file_id = NEW.file_id; "
        "INSERT OR IGNORE INTO keywords (keyword, file_id) "
        "SELECT value, NEW.file_id FROM json_each(NEW.keywords); END"
    )
    db.execute(
        "CREATE TRIGGER keywords_on_update AFTER UPDATE OF keywords ON descriptions BEGIN "
        "DELETE FROM keywords WHERE file_id = NEW.file_id; "
        "INSERT OR IGNORE INTO keywords (keyword, file_id) "
        "SELECT value, NEW.file_id FROM json_each(NEW.keywords); END"
    )
    db.execute(
        "CREATE TRIGGER keywords_on_delete AFTER DELETE ON descriptions BEGIN "
        "DELETE FROM keywords WHERE file_id = OLD.file_id; END"
    )


def _migrate_to_5(db: sqlite3.Connection) -> None:
    # Search by example: each image's feature vector (semfs/ml/image_features.py) in a
    # table like `vectors`, so the same index code serves both. `feature_queue` holds the
    # described images whose features are to be computed; a trigger queues every newly
    # described image (and drops its old features), with a new generation number, so a
    # result computed for an older version of the file is recognised and not stored.
    # `examples` are the directories made under similar/: a stored image (file_id) or an
    # image copied in (its vector; the image itself is not kept). The index on generation
    # keeps the trigger's max() a lookup: a bulk insert of descriptions would otherwise
    # scan the queue once per row.
    _run_script(
        db,
        """
        CREATE TABLE image_vectors (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            file_id INTEGER NOT NULL UNIQUE REFERENCES files (id) ON DELETE CASCADE,
            embedder TEXT NOT NULL,          -- the image features model
            vector BLOB NOT NULL             -- float32, unit length
        );
        CREATE INDEX image_vectors_by_embedder ON image_vectors (embedder, seq);
        CREATE TABLE feature_queue (
            file_id INTEGER PRIMARY KEY REFERENCES files (id) ON DELETE CASCADE,
            generation INTEGER NOT NULL
        );
        CREATE INDEX feature_queue_by_generation ON feature_queue (generation);
        INSERT INTO feature_queue (file_id, generation) SELECT file_id, 1 FROM descriptions;
        CREATE TABLE examples (
            name BLOB PRIMARY KEY,           -- the directory name under similar/
            file_id INTEGER REFERENCES files (id) ON DELETE CASCADE,
            embedder TEXT,
            vector BLOB,
            created_ns INTEGER NOT NULL
        );
        CREATE INDEX files_by_name ON files (name)
        """,
    )
    db.execute(
        "CREATE TRIGGER features_on_describe AFTER INSERT ON descriptions BEGIN "
        "DELETE FROM image_vectors WHERE file_id = NEW.file_id; "
        "INSERT OR REPLACE INTO feature_queue (file_id, generation) VALUES (NEW.file_id, "
        "(SELECT coalesce(max(generation), 0) + 1 FROM feature_queue)); END"
    )


def _migrate_to_6(db: sqlite3.Connection) -> None:
    # Facets (semfs/ingest/facets.py): each description's facts as `key:value` tokens
    # (facet_tokens.py), a JSON list, and as rows with an index, for the filters
    # (colour:red, place:rome) and the places/ view, kept equal by triggers as keywords
    # are. Images described before have none (NULL): the idle facts backfill reads their
    # EXIF again from the start and gives them time and place (not colours: those need
    # the pixels, a re-ingest). Rows ingested since keep theirs (set_facts).
    _run_script(
        db,
        """
        ALTER TABLE descriptions ADD COLUMN facets TEXT;
        CREATE TABLE facet_tokens (
            token TEXT NOT NULL,
            file_id INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
            PRIMARY KEY (token, file_id)
        ) WITHOUT ROWID;
        CREATE INDEX facet_tokens_by_file ON facet_tokens (file_id);
        INSERT OR REPLACE INTO meta (key, value) VALUES ('facts_backfilled_to', '0')
        """,
    )
    db.execute(
        "CREATE TRIGGER facets_on_insert AFTER INSERT ON descriptions BEGIN "
        "DELETE FROM facet_tokens WHERE file_id = NEW.file_id; "
        "INSERT OR IGNORE INTO facet_tokens (token, file_id) "
        "SELECT value, NEW.file_id FROM json_each(coalesce(NEW.facets, '[]')); END"
    )
    db.execute(
        "CREATE TRIGGER facets_on_update AFTER UPDATE OF facets ON descriptions BEGIN "
        "DELETE FROM facet_tokens WHERE file_id = NEW.file_id; "
        "INSERT OR IGNORE INTO facet_tokens (token, file_id) "
        "SELECT value, NEW.file_id FROM json_each(coalesce(NEW.facets, '[]')); END"
    )
    db.execute(
        "CREATE TRIGGER facets_on_delete AFTER DELETE ON descriptions BEGIN "
        "DELETE FROM facet_tokens WHERE file_id = OLD.file_id; END"
    )


def _migrate_to_7(db: sqlite3.Connection) -> None:
    # Text read in the image (OCR, semfs/ingest/texts.py), in the idle pass as image
    # features are: `descriptions.text` holds the words (NULL: not read yet; '': none
    # found or not looked for). `text_queue` holds the described images waiting to be
    # read; a trigger queues every newly described image with a new generation number,
    # so words read from an older version of the file are not stored. Images described
    # before are all queued.
    _run_script(
        db,
        """
        ALTER TABLE descriptions ADD COLUMN text TEXT;
        CREATE TABLE text_queue (
            file_id INTEGER PRIMARY KEY REFERENCES files (id) ON DELETE CASCADE,
            generation INTEGER NOT NULL
        );
        CREATE INDEX text_queue_by_generation ON text_queue (generation);
        INSERT INTO text_queue (file_id, generation) SELECT file_id, 1 FROM descriptions
        """,
    )
    db.execute(
        "CREATE TRIGGER text_on_describe AFTER INSERT ON descriptions BEGIN "
        "INSERT OR REPLACE INTO text_queue (file_id, generation) VALUES (NEW.file_id, "
        "(SELECT coalesce(max(generation), 0) + 1 FROM text_queue)); END"
    )
    db.execute(
        "CREATE TRIGGER text_on_forget AFTER DELETE ON descriptions BEGIN "
        "DELETE FROM text_queue WHERE file_id = OLD.file_id; END"
    )


# MIGRATIONS[i] takes the schema from version i to i + 1. Append, never edit.

MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _migrate_to_1,
    _migrate_to_2,
    _migrate_to_3,
    _migrate_to_4,
    _migrate_to_5,
    _migrate_to_6,
    _migrate_to_7,
]

SCHEMA_VERSION = len(MIGRATIONS)
