"""What the daemon tells other processes through its root's reserved xattrs
(fs/root_reports.py): the last warnings and errors it logged, for `semfs status`. Both
ends are here: `root_reports` answers in the daemon, `ask_mount` asks from a command.
"""

from __future__ import annotations

import json
import os
from typing import Any

from semfs.config import ERRORS_XATTR
from semfs.daemon.logs import RecentRecords
from semfs.fs.root_reports import RootReport, RootReports

# getxattr(2) returns at most XATTR_SIZE_MAX (64 KiB): the oldest errors give way.
REPORT_MAX = 60_000


def root_reports(recent: RecentRecords) -> RootReports:
    def errors() -> bytes:
        records = recent.records()
        while True:
            data = json.dumps(records, ensure_ascii=False).encode()
            if len(data) <= REPORT_MAX or not records:
                return data
            records = records[1:]

    return RootReports({ERRORS_XATTR: RootReport(errors, private=True)})


def ask_mount(mountpoint: str, name: bytes) -> Any:
    """The report `name` of the daemon serving `mountpoint`, decoded; None if it cannot
    be asked (another user's mount, a dead one, a daemon from before the reports)."""
    try:
        return json.loads(os.getxattr(mountpoint, name))
    except (OSError, ValueError):
        return None
