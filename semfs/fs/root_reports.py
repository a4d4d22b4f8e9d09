"""Reserved, read-only xattrs of the mount's root, through which the daemon answers
other processes (`semfs status`, `semfs config`): what only it knows, such as the last
errors it logged (which a full disk keeps out of the log file) and the settings it runs
with.

An xattr rather than a socket or a file: it needs no server of its own, and it reaches
exactly the daemon serving that mountpoint, with the caller's uid checked per request.
The names are answered when asked for and not listed, like CephFS's virtual xattrs, so
that `cp -a` or `rsync -X` of the mount does not copy them onto the copy; setting or
removing one is EPERM. Any other xattr of the root is the store root's own.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class RootReport:
    produce: Callable[[], bytes]  # called on the trio thread: must not block
    # Only root and the user running the daemon may read it (it holds paths and captions,
    # as the 0600 log does); others get EACCES, even under allow_other.
    private: bool = False


class RootReports:
    def __init__(self, reports: Mapping[bytes, RootReport] | None = None) -> None:
        self._reports = dict(reports or {})

    def read(self, name: bytes, uid: int) -> bytes | None:
        """The report named `name` for a caller of `uid`; None if no report has it."""
        report = self._reports.get(name)
        if report is None:
            return None
        if report.private and uid not in (0, os.getuid()):
            raise PermissionError(errno.EACCES, "the daemon's report is its owner's")
        return report.produce()

    def refuse_change(self, name: bytes) -> None:
        if name in self._reports:
            raise PermissionError(errno.EPERM, "a read-only report of the daemon")
