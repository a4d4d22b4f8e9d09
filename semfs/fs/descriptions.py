"""What the catalog says of a stored image, as xattrs of the image itself.

`getfattr -d` on any image in the mount shows, beside the file's own xattrs:
- `user.semfs.caption`: the caption search uses. A caption the user set with
  `setfattr` is a real xattr of the file and is shown as it is (writing it keeps its
  meaning: the image is described again with it); otherwise the catalog's, from the
  model or the description stored in the file.
- `user.semfs.keywords`: its keywords, a JSON list, best first (those of tags/).
- `user.semfs.status`: `queued`, `indexed`, or `failed: <reason>`.
- `user.semfs.text`: the words read in the image (OCR, docs/facets.md), once the idle
  pass has read it (absent before; empty if it found none); also on the entries of
  search/, tags/, places/ and similar/ that show it (getfattr -n; not listed there).
The last three are computed, so they cannot be set or removed. The catalog is read in a
worker thread, never on the trio thread.
"""

from __future__ import annotations

import errno
import json

import pyfuse3
import trio

from semfs.catalog.reads import SearchReads
from semfs.catalog.records import FileState, StoredDescription
from semfs.config import CAPTION_XATTR
from semfs.fs.passthrough import Passthrough

XATTR_KEYWORDS = b"user.semfs.keywords"
XATTR_STATUS = b"user.semfs.status"
XATTR_TEXT = b"user.semfs.text"
COMPUTED = frozenset({XATTR_KEYWORDS, XATTR_STATUS, XATTR_TEXT})  # read-only
DESCRIBED = frozenset({CAPTION_XATTR, *COMPUTED})


class StoredDescriptions:
    def __init__(self, reads: SearchReads, limiter: trio.CapacityLimiter) -> None:
        self._reads = reads
        self._limiter = limiter

    async def describe(self, paths: list[bytes]) -> dict[bytes, bytes]:
        """The described xattrs of the file at `paths` (its names), by name: empty if
        the catalog does not hold it (not an image, or not seen yet)."""
        description = await trio.to_thread.run_sync(self._first, paths, limiter=self._limiter)
        return {} if description is None else _values(description)

    async def value(self, paths: list[bytes], name: bytes) -> bytes:
        value = (await self.describe(paths)).get(name)
        if value is None:
            raise pyfuse3.FUSEError(pyfuse3.ENOATTR)
        return value

    async def getxattr(self, fs: Passthrough, inode: int, name: bytes) -> bytes:
        """An xattr of a stored file: its own, or the catalog's description."""
        if name not in DESCRIBED:
            return fs.getxattr(inode, name)
        if name == CAPTION_XATTR:
            try:
                return fs.getxattr(inode, name)  # a caption the user set wins
            except OSError as error:
                if error.errno != errno.ENODATA:
                    raise
        return await self.value(_paths(fs, inode), name)

    async def listxattr(self, fs: Passthrough, inode: int) -> list[bytes]:
        names = fs.listxattr(inode)
        described = await self.describe(_paths(fs, inode))
        return names + [name for name in described if name not in names]

    def _first(self, paths: list[bytes]) -> StoredDescription | None:
        for path in paths:  # hard links: the catalog holds the file under one of them
            description = self._reads.description_of(path)
            if description is not None:
                return description
        return None


def _paths(fs: Passthrough, inode: int) -> list[bytes]:
    """The store paths of a real inode (none if it was unlinked)."""
    try:
        return fs.inodes.paths(inode)
    except OSError:
        return []


def _values(description: StoredDescription) -> dict[bytes, bytes]:
    status = description.state.value
    if description.state is FileState.FAILED:
        status = f"failed: {description.error or 'unknown reason'}"
    values = {XATTR_STATUS: status.encode()}
    if description.caption is not None:
        values[CAPTION_XATTR] = description.caption.encode()
        values[XATTR_KEYWORDS] = json.dumps(description.keywords).encode()
    if description.text is not None:
        values[XATTR_TEXT] = description.text.encode()
    return values


def refuse_computed(name: bytes) -> None:
    """Keywords, status and text come from the catalog: setting or removing them is EPERM."""
    if name in COMPUTED:
        raise OSError(errno.EPERM, "computed by semfs")
