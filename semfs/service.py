"""A systemd unit that mounts a store at boot (`semfs service STORE MOUNTPOINT`)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path


def systemd_unit(store: Path, mountpoint: str, executable: str | None = None) -> str:
    """The unit text. It runs the mount in the foreground, so systemd supervises the
    daemon itself: `systemctl stop` sends SIGTERM (semfs unmounts cleanly), and a crash
    is restarted, the dead mount it leaves being cleaned up by the next `semfs mount`."""
    python = shlex.quote(executable or sys.executable)
    arguments = " ".join(shlex.quote(str(a)) for a in (store, mountpoint))
    return f"""\
[Unit]
Description=semfs semantic image filesystem: {store} at {mountpoint}
After=local-fs.target
RequiresMountsFor={_escape_specifiers(str(store))}

[Service]
Type=simple
ExecStart={python} -m semfs mount --foreground {_escape_specifiers(arguments)}
Restart=on-failure
RestartSec=2
TimeoutStopSec=60

[Install]
WantedBy=multi-user.target
"""


def _escape_specifiers(text: str) -> str:
    return text.replace("%", "%%")
