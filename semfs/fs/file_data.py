"""File data of real files, between the mount and an open backing file.

One job: move the bytes of a handle's backing descriptor. It decides the flags a backing
file is opened with for the mount's caching mode, answers a read from the page cache
when it can (a memory copy, on the trio thread), and otherwise reads, writes and syncs
in a worker thread (`trio.to_thread`), so a slow disk never stalls the trio thread that
serves every other request. The bookkeeping of handles and changes stays with the caller.
"""

from __future__ import annotations

import errno
import os

import trio

# O_DIRECT needs aligned buffers the kernel does not promise us; FUSE's own page cache
# settings decide caching. Creation flags are handled by `create`, truncation by setattr.
_STRIPPED_OPEN_FLAGS = os.O_DIRECT | os.O_CREAT | os.O_EXCL | os.O_NOCTTY


def backing_open_flags(flags: int, writeback_cache: bool) -> int:
    """The flags to open a backing file with, for an open(2) with `flags` in the mount."""
    flags &= ~_STRIPPED_OPEN_FLAGS
    if not writeback_cache:
        return flags
    # As libfuse's passthrough_ll: the kernel fills partial pages by reading, even for a
    # write-only open; and it sends appends at the offset of its own end of file, which
    # O_APPEND on the backing file would ignore for every page written back later.
    if flags & os.O_ACCMODE == os.O_WRONLY:
        flags = (flags & ~os.O_ACCMODE) | os.O_RDWR
    return flags & ~os.O_APPEND


async def read(fd: int, offset: int, size: int, limiter: trio.CapacityLimiter) -> bytes | bytearray:
    cached = read_if_cached(fd, offset, size)
    if cached is not None:  # a memory copy: no need to leave the trio thread
        return cached
    return await trio.to_thread.run_sync(os.pread, fd, size, offset, limiter=limiter)


async def write(fd: int, offset: int, data: bytes, limiter: trio.CapacityLimiter) -> int:
    return await trio.to_thread.run_sync(_write_all, fd, data, offset, limiter=limiter)


async def sync(fd: int, datasync: bool, limiter: trio.CapacityLimiter) -> None:
    await trio.to_thread.run_sync(os.fdatasync if datasync else os.fsync, fd, limiter=limiter)


def read_if_cached(fd: int, offset: int, size: int) -> bytearray | None:
    """The data if the backing file's page cache holds all of it, else None.

    RWF_NOWAIT makes the read fail rather than wait for the disk, so this costs a
    memory copy and never blocks the caller.
    """
    buffer = bytearray(size)
    try:
        count = os.preadv(fd, [buffer], offset, os.RWF_NOWAIT)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError as error:
        if error.errno in (errno.EOPNOTSUPP, errno.EINVAL):  # a filesystem without it
            return None
        raise
    # A short read is the end of the file, or only the cached part of the range: FUSE
    # takes a short reply as the end of the file, so it must be the real one.
    if count < size and offset + count < os.fstat(fd).st_size:
        return None
    del buffer[count:]
    return buffer


def _write_all(fd: int, data: bytes, offset: int) -> int:
    """FUSE requires every byte written (short writes only with direct_io)."""
    view = memoryview(data)
    written = 0
    while written < len(view):
        written += os.pwrite(fd, view[written:], offset + written)
    return written
