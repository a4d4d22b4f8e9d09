"""Content hashes: how a moved or copied image is recognised without re-reading models."""

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def content_hash(path: Path | bytes) -> str:
    """BLAKE2b-128 of the file's bytes, hex. Blocking: call from a worker thread."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
