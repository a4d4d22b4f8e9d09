"""pyfuse3 entry attributes from a stat result: one place for real files and views."""

from __future__ import annotations

import os

import pyfuse3


def entry_attributes(
    number: int, info: os.stat_result, entry_timeout: float, attr_timeout: float
) -> pyfuse3.EntryAttributes:
    attr = pyfuse3.EntryAttributes()
    attr.st_ino = number
    attr.generation = 0
    attr.entry_timeout = entry_timeout
    attr.attr_timeout = attr_timeout
    attr.st_mode = info.st_mode
    attr.st_nlink = info.st_nlink
    attr.st_uid = info.st_uid
    attr.st_gid = info.st_gid
    attr.st_rdev = info.st_rdev
    attr.st_size = info.st_size
    attr.st_blksize = info.st_blksize
    attr.st_blocks = info.st_blocks
    attr.st_atime_ns = info.st_atime_ns
    attr.st_mtime_ns = info.st_mtime_ns
    attr.st_ctime_ns = info.st_ctime_ns
    return attr


def negative_entry(timeout: float) -> pyfuse3.EntryAttributes:
    """A name that is not there, which the kernel may remember for `timeout` seconds (a
    raised ENOENT is not cached, so `cp` and file managers would ask again for every
    probe; 0 when the name may appear at once)."""
    attr = pyfuse3.EntryAttributes()
    attr.st_ino = 0
    attr.entry_timeout = timeout
    return attr
