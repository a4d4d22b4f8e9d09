"""Names in the result views: which names are queries, and what results are called.

Every name looked up under `search/` is a query, except dot-names and the names file
managers probe for (`desktop.ini`, `folder.jpg`, ...), which are absent. A result is
named by its image's basename; names several results share get a stable suffix.
"""

from __future__ import annotations

import errno
import logging
import os

from semfs.search.query import QuerySyntaxError, parse_query
from semfs.search.searcher import Hit

log = logging.getLogger(__name__)

NAME_MAX = 255
# Names file managers and shells look up in any directory; never queries.
PROBE_NAMES = frozenset({
    b"desktop.ini", b"folder.jpg", b"folder.png", b"folder.gif", b"thumbs.db", b"autorun.inf",
    b"icon\r", b"albumart.jpg", b"albumartsmall.jpg", b"cover.jpg", b"cover.png",
    b"lost+found", b"__pycache__", b"node_modules",
})  # fmt: skip


def is_probe(name: bytes) -> bool:
    """Hidden names and the files file managers look for in every folder (`.hidden`,
    `.directory`, `desktop.ini`, `folder.jpg`, ...): never queries nor results."""
    return name.startswith(b".") or name.lower() in PROBE_NAMES


def query_text(name: bytes) -> str:
    """The query a directory name asks for; FileNotFoundError if it is a probe, OSError
    EINVAL if it cannot be a query."""
    if len(name) > NAME_MAX:  # FUSE passes names up to 1024 bytes; a query is a file name
        raise OSError(errno.ENAMETOOLONG, f"a query name holds at most {NAME_MAX} bytes")
    if is_probe(name):
        raise FileNotFoundError(errno.ENOENT, "not a query")
    try:
        text = name.decode("utf-8")
    except UnicodeDecodeError:
        raise OSError(errno.EINVAL, "a query must be UTF-8 text") from None
    if not any(character.isalnum() for character in text):
        raise OSError(errno.EINVAL, "a query needs at least one letter or digit")
    text = " ".join(text.split())
    try:
        parse_query(text)
    except QuerySyntaxError as error:
        log.warning("query %r refused (EINVAL): %s", text, error)
        raise OSError(errno.EINVAL, str(error)) from None
    return text


def result_names(hits: list[Hit]) -> list[bytes]:
    """Each hit's basename; where several hits share one, all but the oldest file (lowest
    id) get a suffix from their id (`cat~42.png`), the same on every listing."""
    basenames = [os.path.basename(hit.path) for hit in hits]
    oldest: dict[bytes, int] = {}
    for basename, hit in zip(basenames, hits, strict=True):
        oldest[basename] = min(oldest.get(basename, hit.file_id), hit.file_id)
    names = []
    for basename, hit in zip(basenames, hits, strict=True):
        if oldest[basename] == hit.file_id:
            names.append(basename)
        else:
            stem, dot, extension = basename.rpartition(b".")
            if not stem:
                stem, dot, extension = extension, b"", b""
            names.append(b"%s~%d%s%s" % (stem, hit.file_id, dot, extension))
    return names
