"""Who may see a view's entry for a stored image: whoever could reach it by its real path.

A result entry (`search/<q>/photo.jpg`, and likewise under tags/ and similar/) is another
name for a file in the store. The kernel checks `default_permissions` against the
entry's own attributes only, so a 0700 folder above the real file would not protect it
there. Every request on such an entry asks here instead, with the caller's uid and
groups: search (x) permission on each directory from the store's root down to the file,
and read permission on the file. The check is the kernel's own for FUSE mounts: mode
bits, owner then group then others, root passing all but a file with no x bit (semfs
does not enable POSIX ACLs, so the kernel ignores them on the real paths too).
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import stat
from dataclasses import dataclass, field

from semfs.store.backing import BackingStore

log = logging.getLogger(__name__)

READ, SEARCH = 4, 1  # the r and x bits of one class of a mode


@dataclass(frozen=True)
class Caller:
    """The process a request comes from, as the kernel checks permissions for it."""

    uid: int
    gid: int  # its primary group
    pid: int

    @classmethod
    def of(cls, uid: int, gid: int, pid: int) -> Caller:
        return cls(uid, gid, pid)

    @functools.cached_property
    def gids(self) -> frozenset[int]:
        """All its groups. A request's context carries no supplementary groups: they are
        read from /proc, and only when a mode's group bits decide (a process gone
        meanwhile keeps only its primary group)."""
        return frozenset({self.gid, *_supplementary_groups(self.pid)})


def _supplementary_groups(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"Groups:"):
                    return [int(group) for group in line.split()[1:]]
    except (OSError, ValueError):
        pass
    return []


def permits(caller: Caller, info: os.stat_result, wanted: int) -> bool:
    """Whether the mode bits of `info` give `caller` every permission in `wanted`."""
    if caller.uid == 0:
        is_file = not stat.S_ISDIR(info.st_mode)
        return not (wanted & SEARCH and is_file and not info.st_mode & 0o111)
    if caller.uid == info.st_uid:
        granted = info.st_mode >> 6
    elif info.st_gid == caller.gid or info.st_gid in caller.gids:
        granted = info.st_mode >> 3
    else:
        granted = info.st_mode
    return granted & wanted == wanted


@dataclass
class Reach:
    """One caller's reach into the store, for one request: directories are looked at once
    however many entries of a listing lie under them."""

    store: BackingStore
    caller: Caller
    _directories: dict[bytes, bool] = field(default_factory=dict)

    def may_read(self, path: bytes) -> bool:
        """Search on every directory above store path `path`, and read on the file."""
        if self.caller.uid == 0:
            return True  # passes every check below: spare the stats
        try:
            if not all(self._may_search(directory) for directory in _ancestors(path)):
                return False
            return permits(self.caller, self.store.lstat(path), READ)
        except OSError:
            return False  # gone meanwhile: nothing to show

    def _may_search(self, directory: bytes) -> bool:
        allowed = self._directories.get(directory)
        if allowed is None:
            allowed = permits(self.caller, self.store.lstat(directory), SEARCH)
            self._directories[directory] = allowed
        return allowed


def _ancestors(path: bytes) -> list[bytes]:
    """The store's root (b"") and each directory down to the one holding `path`."""
    parts = path.split(b"/")[:-1]
    return [b"/".join(parts[:depth]) for depth in range(len(parts) + 1)]


def check_view_entry(reach: Reach, real_path: bytes) -> None:
    """Refuse (EACCES) a request on a view entry that shows the stored file at
    `real_path`, if the caller cannot read it by that path."""
    if not reach.may_read(real_path):
        raise PermissionError(errno.EACCES, "not readable by its real path")
