"""The mount's readahead window.

The kernel gives a FUSE mount the default readahead of 128 KiB, and the INIT handshake
can only lower it, so a sequential read reaches the daemon as 128-256 KiB requests,
each a round trip. Root can widen the window afterwards through the mount's
backing-device entry in sysfs (/sys/class/bdi/MAJOR:MINOR/read_ahead_kb), as for any
block device; this module does that once the mount is up.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from semfs.config import FSTYPE

log = logging.getLogger(__name__)

READAHEAD_KIB = 1024  # FUSE's largest request (256 pages): one round trip per MiB
_BDI = Path("/sys/class/bdi")


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mount_device(source: str, fstype: str = FSTYPE) -> str | None:
    """ "MAJOR:MINOR" of the mount of `source` with `fstype` (the last one, if several)."""
    found = None
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as table:
        for line in table:
            fields = line.split()
            separator = fields.index("-")
            if fields[separator + 1] == fstype and _unescape(fields[separator + 2]) == source:
                found = fields[2]
    return found


def widen_readahead(source: str, kib: int = READAHEAD_KIB) -> bool:
    """Raise the readahead of the semfs mount of `source` to `kib`; False if it cannot
    (not root, no sysfs): reads then just take more round trips."""
    try:
        device = mount_device(source)
        if device is None:
            return False
        setting = _BDI / device / "read_ahead_kb"
        if int(setting.read_text()) < kib:
            setting.write_text(f"{kib}\n")
    except (OSError, ValueError) as error:
        log.debug("cannot widen the mount's readahead: %s", error)
        return False
    return True
