"""The open handles of real files and directories, and the backing descriptors they hold.

A file's handle is its backing descriptor; a directory's is a counter, apart from it.
Indexed by inode as well, so that a request on an inode can find a descriptor open on
it: the cheap way to reach an open file, and the only one to an unlinked one. The table
closes a descriptor when its handle is removed.
"""

from __future__ import annotations

import errno
import itertools
import os
from dataclasses import dataclass


@dataclass
class OpenFile:
    fd: int
    inode: int
    modified: bool = False


@dataclass
class DirListing:
    fd: int  # keeps the directory readable even after it is removed
    inode: int
    entries: list[tuple[bytes, os.stat_result]] | None = None  # snapshot; offsets index it


class Handles:
    def __init__(self) -> None:
        self._files: dict[int, OpenFile] = {}  # by fh (= the backing fd)
        self._dirs: dict[int, DirListing] = {}
        self._dir_handles = itertools.count(1)
        # Descriptors open on each inode, oldest first (dicts as ordered sets).
        self._file_fds: dict[int, dict[int, None]] = {}
        self._dir_fds: dict[int, dict[int, None]] = {}

    # --- files --------------------------------------------------------------------------

    def add_file(self, fd: int, number: int) -> OpenFile:
        handle = self._files[fd] = OpenFile(fd, number)
        self._file_fds.setdefault(number, {})[fd] = None
        return handle

    def find_file(self, fh: int | None) -> OpenFile | None:
        return self._files.get(fh) if fh is not None else None

    def file(self, fh: int) -> OpenFile:
        try:
            return self._files[fh]
        except KeyError:
            raise OSError(errno.EBADF, "unknown file handle") from None

    def close_file(self, handle: OpenFile) -> None:
        self._files.pop(handle.fd, None)
        _discard(self._file_fds, handle.inode, handle.fd)
        os.close(handle.fd)

    # --- directories --------------------------------------------------------------------

    def add_directory(self, fd: int, number: int) -> int:
        fh = next(self._dir_handles)
        self._dirs[fh] = DirListing(fd, number)
        self._dir_fds.setdefault(number, {})[fd] = None
        return fh

    def directory(self, fh: int) -> DirListing:
        try:
            return self._dirs[fh]
        except KeyError:
            raise OSError(errno.EBADF, "unknown directory handle") from None

    def close_directory(self, fh: int) -> DirListing | None:
        listing = self._dirs.pop(fh, None)
        if listing is not None:
            _discard(self._dir_fds, listing.inode, listing.fd)
            os.close(listing.fd)
        return listing

    # --- by inode -----------------------------------------------------------------------

    def file_descriptor(self, number: int) -> int | None:
        """A descriptor of a file handle open on the inode, if any."""
        fds = self._file_fds.get(number)
        return next(iter(fds)) if fds else None

    def directory_descriptor(self, number: int) -> int | None:
        """A descriptor of a directory handle open on the inode, if any."""
        fds = self._dir_fds.get(number)
        return next(iter(fds)) if fds else None

    def descriptor(self, number: int) -> int | None:
        """Any descriptor open on the inode: it still reaches an unlinked file."""
        fd = self.file_descriptor(number)
        return fd if fd is not None else self.directory_descriptor(number)

    def file_handles(self) -> list[int]:
        return list(self._files)

    def directory_handles(self) -> list[int]:
        return list(self._dirs)


def _discard(fds_by_inode: dict[int, dict[int, None]], number: int, fd: int) -> None:
    fds = fds_by_inode.get(number, {})
    fds.pop(fd, None)
    if not fds:
        fds_by_inode.pop(number, None)
