"""What the daemon tells other processes through its root's reserved xattrs
(fs/root_reports.py): the last warnings and errors it logged, for `semfs status`, and
the settings it runs with and where each came from, for `semfs config`. Both ends are
here: `root_reports` answers in the daemon, `ask_mount` asks from a command.
"""

from __future__ import annotations

import json
import os
from typing import Any

from semfs.config import ERRORS_XATTR, SETTINGS_XATTR, Settings, explain_settings
from semfs.daemon.logs import RecentRecords
from semfs.fs.root_reports import RootReport, RootReports
from semfs.search.engine import Engine

# getxattr(2) returns at most XATTR_SIZE_MAX (64 KiB): the oldest errors give way.
REPORT_MAX = 60_000


def root_reports(
    settings: Settings,
    sources: dict[str, str],
    mountpoint: str,
    engine: Engine,
    recent: RecentRecords,
) -> RootReports:
    def errors() -> bytes:
        records = recent.records()
        while True:
            data = json.dumps(records, ensure_ascii=False).encode()
            if len(data) <= REPORT_MAX or not records:
                return data
            records = records[1:]

    def settings_in_force() -> bytes:
        report = {
            "store": str(settings.store),
            "mountpoint": mountpoint,
            "pid": os.getpid(),
            # The cuts the engine applies: the calibrated ones when the settings are unset.
            "settings": explain_settings(settings, sources, engine.cuts_in_force()),
        }
        return json.dumps(report, ensure_ascii=False).encode()

    return RootReports(
        {
            ERRORS_XATTR: RootReport(errors, private=True),
            SETTINGS_XATTR: RootReport(settings_in_force),
        }
    )


def ask_mount(mountpoint: str, name: bytes) -> Any:
    """The report `name` of the daemon serving `mountpoint`, decoded; None if it cannot
    be asked (another user's mount, a dead one, a daemon from before the reports)."""
    try:
        return json.loads(os.getxattr(mountpoint, name))
    except (OSError, ValueError):
        return None
