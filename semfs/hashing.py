"""Content hashes: how a moved or copied image is recognised without re-reading models."""

import hashlib
import os

_CHUNK = 1 << 20


def content_hash(file_or_fd: str | bytes | os.PathLike[str] | int) -> str:
    """BLAKE2b-128 of the file's bytes, hex; a descriptor is read and closed.

    Blocking: call from a worker thread.
    """
    digest = hashlib.blake2b(digest_size=16)
    with open(file_or_fd, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def descriptor_hash(fd: int) -> str:
    """BLAKE2b-128 of an open file's bytes from offset 0; the descriptor stays open and
    its offset is left alone. Blocking: call from a worker thread."""
    digest = hashlib.blake2b(digest_size=16)
    offset = 0
    while chunk := os.pread(fd, _CHUNK, offset):
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()
