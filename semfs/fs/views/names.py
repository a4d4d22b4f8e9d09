"""Names in the result views: which names are queries, and what results are called.

Every name looked up under `search/` is a query, except dot-names and the names file
managers probe for (`desktop.ini`, `folder.jpg`, ...), which are absent. A result is
named by its image's basename; names several results share get a stable suffix. In
search/ and similar/ the name starts with the result's rank, zero-padded (`01 cat.png`),
so that a listing sorted by name, as `ls` and file managers sort, shows the best first.
"""

from __future__ import annotations

import errno
import logging
import os
import re

from semfs.search.query import QuerySyntaxError, parse_query
from semfs.search.searcher import Hit

log = logging.getLogger(__name__)

NAME_MAX = 255
_RANKED = re.compile(rb"(\d{2,}) (.+)", re.S)  # `01 cat~42.png`, as ranked_names makes it
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


def rank_width(limit: int) -> int:
    """Digits in the rank prefixes of a folder that lists at most `limit` results (at
    least 2): the same width for every rank, so that names sort as the ranks do."""
    return max(2, len(str(limit)))


def ranked_names(hits: list[Hit], limit: int) -> list[bytes]:
    """Each hit's result name behind its rank in the listing, 1-based, zero-padded to the
    width of the folder's `limit` (`01 dog.jpg`, `02 cat~42.png`): sorted by name, the
    listing comes best first. A name stays the same while its rank does."""
    width = rank_width(max(limit, len(hits)))
    return [b"%0*d %s" % (width, rank, name) for rank, name in enumerate(result_names(hits), 1)]


def unranked(name: bytes) -> bytes | None:
    """The result name behind a rank prefix (`03 cat~42.png` -> `cat~42.png`); None when
    `name` has none."""
    match = _RANKED.fullmatch(name)
    return None if match is None else match.group(2)
