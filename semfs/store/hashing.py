"""Content hashes: how a moved or copied image is recognised without re-reading models."""

import hashlib
import os

_CHUNK = 1 << 20


def content_hash(path: str | bytes | os.PathLike[str]) -> str:
    """BLAKE2b-128 of the file's bytes, hex. Blocking: call from a worker thread."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return descriptor_hash(fd)
    finally:
        os.close(fd)


def descriptor_hash(fd: int) -> str:
    """BLAKE2b-128 of an open file's bytes from offset 0, hex; the descriptor stays open
    and its offset is left alone. Blocking: call from a worker thread."""
    digest = hashlib.blake2b(digest_size=16)
    offset = 0
    while chunk := os.pread(fd, _CHUNK, offset):
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()
