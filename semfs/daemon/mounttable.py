"""What the kernel has mounted where, and how to take a FUSE mount down."""

from __future__ import annotations

import errno
import os
import re
import subprocess
import time
from dataclasses import dataclass

from semfs.config import FSTYPE
from semfs.errors import QuietError


@dataclass(frozen=True)
class MountEntry:
    mountpoint: str
    fstype: str
    source: str


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def find_mount(mountpoint: str) -> MountEntry | None:
    """The topmost mount at `mountpoint` (an absolute path), if any."""
    found = None
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as table:
        for line in table:
            fields = line.split()
            separator = fields.index("-")
            if _unescape(fields[4]) == mountpoint:
                found = MountEntry(
                    mountpoint=mountpoint,
                    fstype=fields[separator + 1],
                    source=_unescape(fields[separator + 2]),
                )
    return found


def mounted_store(path: str) -> str | None:
    """The store of the semfs mount whose mountpoint `path` is, if it is one: a mount's
    source is its store (the fsname the daemon gives it)."""
    for candidate in dict.fromkeys((os.path.abspath(path), os.path.realpath(path))):
        entry = find_mount(candidate)
        if entry is not None and entry.fstype == FSTYPE:
            return entry.source
    return None


def is_stale(mountpoint: str) -> bool:
    """True when the mount's daemon is gone: every request answers ENOTCONN.

    statfs, because the kernel never caches it: a plain stat can still be answered from
    the attribute cache for a while after the daemon died.
    """
    try:
        os.statvfs(mountpoint)
    except OSError as error:
        return error.errno == errno.ENOTCONN
    return False


def fuse_unmount(mountpoint: str, lazy: bool = False, busy_timeout: float = 3.0) -> None:
    """fusermount3 -u; "busy" is retried for `busy_timeout` seconds, since a scanner or
    thumbnailer often holds a directory in the mount for a moment."""
    command = ["fusermount3", "-u", *(["-z"] if lazy else []), mountpoint]
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            result = subprocess.run(command, capture_output=True, text=True, check=False)
        except FileNotFoundError as error:
            raise QuietError("fusermount3 is missing: install the fuse3 package") from error
        if result.returncode == 0:
            return
        message = result.stderr.strip() or f"exit status {result.returncode}"
        busy = "busy" in message
        if not busy or time.monotonic() > deadline:
            hint = " (files still open there? close them, or use --lazy)" if busy else ""
            raise QuietError(f"cannot unmount {mountpoint}: {message}{hint}")
        time.sleep(0.1)
