"""Keep a memory-mapped index file from filling the daemon's resident memory.

A search touches a few of the index file's pages; the kernel maps them into the process
and leaves them there, so after enough different queries the whole file counts in the
daemon's RSS (1.7 GiB after 40 queries on a 1 M-image Annoy base, docs/
benchmarks-search.md), although it is only page cache. `MappedPages.release()` unmaps
what a search touched with `madvise(MADV_DONTNEED)`: the pages stay in the page cache, so
the next search maps them again with minor faults (0.1 ms a search at 200 k vectors,
measured). The file's contents never change while it is mapped (a new base is a new
file), so dropping the pages loses nothing.

The regions are found in /proc/self/maps right after the library mapped the file, as the
ones of its name that were not there before: they are valid exactly as long as the
object that mapped them lives, so release() must be called while the caller holds it.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

log = logging.getLogger(__name__)

MADV_DONTNEED = 4  # Linux
T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.madvise.restype = ctypes.c_int


def file_regions(path: Path) -> set[tuple[int, int]]:
    """(start, end) of this process's mappings of the file at `path` (by its name, as
    /proc shows it: device and inode numbers there need not be stat's on overlays)."""
    name = os.path.realpath(path)
    regions = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.rstrip("\n").split(maxsplit=5)
            if len(fields) == 6 and fields[5] == name:
                start, end = fields[0].split("-")
                regions.add((int(start, 16), int(end, 16)))
    return regions


class MappedPages:
    """The regions one loaded index object mapped of its file."""

    def __init__(self, regions: set[tuple[int, int]]) -> None:
        self._regions = sorted(regions)

    @classmethod
    def around(cls, path: Path, load: Callable[[], T]) -> tuple[T, MappedPages]:
        """Call `load` (which maps `path`) and note the regions it mapped."""
        before = file_regions(path)
        loaded = load()
        # Replaced meanwhile, /proc shows it "(deleted)": nothing found, only RSS lost.
        return loaded, cls(file_regions(path) - before)

    def __len__(self) -> int:
        return sum(end - start for start, end in self._regions)

    def release(self) -> None:
        for start, end in self._regions:
            if _libc.madvise(start, end - start, MADV_DONTNEED) != 0:
                error = ctypes.get_errno()
                log.warning("index: madvise failed: %s; pages stay resident", os.strerror(error))
                self._regions = []
                return
