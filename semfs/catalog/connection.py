"""The catalog's one SQLite connection, and the transaction discipline every catalog
module follows.

THE DISCIPLINE (the other catalog modules refer to this rather than repeating it):

- One connection per open catalog, shared by the trio thread's helpers and by worker
  threads (it is opened with check_same_thread=False), and one re-entrant lock guarding
  it: every statement on it runs under the lock.
- Reads take the lock through `read()`, which yields the connection; a result is
  fetched in full before the lock is let go.
- Every write runs in one BEGIN IMMEDIATE transaction through `write()`: it takes the
  database's write lock at the start (so it cannot fail half-way for want of it), and
  commits at the end, or rolls back on any exception. A change that spans several
  statements is one call of `write()`, so no reader ever sees it half made.
- A long scan (an index rebuild, `semfs check`) must not hold the shared connection's
  lock for its duration: it uses its own read-only connection from `open_reader()`.
- Searches and the views never wait for ingest: their reads (reads.py) run on a
  read-only connection of their own thread, from `own_read()`, so a write transaction
  of the ingest thread, which holds the shared connection's lock, does not hold them
  up. In WAL mode such a reader sees every transaction committed before its statement
  began, and nothing half made.
- The database is in WAL mode with synchronous = NORMAL: readers do not block the
  writer nor it them, and a committed transaction survives a crash of the process
  (a power cut may lose the last ones, never consistency).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class CatalogConnection:
    """The shared connection to one catalog database, its lock and its path."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db  # GUARDED_BY(_lock)
        self._lock = threading.RLock()
        self.path = path
        self._own = threading.local()  # .reader: this thread's read-only connection
        self._readers: list[sqlite3.Connection] = []  # GUARDED_BY(_readers_lock)
        self._readers_lock = threading.Lock()  # not _lock: a writer may hold that one

    @classmethod
    def open(cls, path: Path) -> CatalogConnection:
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
        return cls(db, path)

    def close(self) -> None:
        with self._readers_lock:
            for reader in self._readers:
                reader.close()
            self._readers.clear()
        with self._lock:
            self._db.close()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock: for reads (fetch what you need inside)."""
        with self._lock:
            yield self._db

    @contextmanager
    def own_read(self) -> Iterator[sqlite3.Connection]:
        """This thread's own read-only connection, made on first use: reads that must
        not wait for the shared connection's lock (searches, while ingest writes)."""
        reader: sqlite3.Connection | None = getattr(self._own, "reader", None)
        if reader is None:
            reader = self.open_reader()
            reader.execute("PRAGMA cache_size = -1024")  # 1 MiB a thread: memory stays low
            with self._readers_lock:
                self._readers.append(reader)
            self._own.reader = reader
        yield reader

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One BEGIN IMMEDIATE transaction under the lock: committed when the block
        ends, rolled back if it raises."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                # Also when COMMIT itself failed (a full disk): SQLite may leave the
                # transaction open, and the next BEGIN would then fail for ever.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def open_reader(self) -> sqlite3.Connection:
        """A separate read-only connection, for long scans (an index rebuild) that must
        not hold the shared connection's lock."""
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
