"""What the catalog holds, as Python values: file records, queue items, descriptions."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


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
    taken_ns: int | None = None  # when the photo was taken (EXIF), if it says
    camera: str | None = None  # EXIF make and model, if any
    facets: list[str] = field(default_factory=list)  # key:value tokens (facet_tokens.py)


@dataclass(frozen=True)
class StoredDescription:
    """What the catalog says of one stored file (its xattrs through the mount)."""

    state: FileState
    error: str | None
    caption: str | None  # None until it is described
    keywords: list[str]
    text: str | None = None  # words read in it (OCR); None until the idle pass read it


@dataclass(frozen=True)
class StoredHit:
    file_id: int
    path: bytes
    seq: int  # of the file's current vector
    caption: str
    size: int = 0
    time_ns: int = 0  # when the photo was taken (EXIF), else the file's mtime
    camera: str = ""
    facets: frozenset[str] = frozenset()  # key:value tokens (facet_tokens.py)


def split_path(path: bytes) -> tuple[bytes, bytes]:
    """b"a/b/c.jpg" -> (b"a/b", b"c.jpg"); a top-level file has dir b""."""
    head, _, tail = path.rpartition(b"/")
    return head, tail


def join_path(directory: bytes, name: bytes) -> bytes:
    return directory + b"/" + name if directory else name


FILE_COLUMNS = "id, dir, name, size, mtime_ns, content_hash, state, error"
# The tables of vectors an index is built from: caption vectors (text search) and image
# features (search by example). Same columns; the only names spliced into their SQL.
VECTOR_TABLES = ("vectors", "image_vectors")


def file_record(row: tuple[int, bytes, bytes, int, int, str | None, str, str | None]) -> FileRecord:
    file_id, directory, name, size, mtime_ns, content_hash, state, error = row
    return FileRecord(
        file_id, join_path(directory, name), size, mtime_ns, content_hash, FileState(state), error
    )
