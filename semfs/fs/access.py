"""Who may see a view's entry for a stored image: whoever could reach it by its real path.

A result entry (`search/<q>/photo.jpg`, and likewise under tags/ and similar/) is another
name for a file in the store. The kernel checks `default_permissions` against the
entry's own attributes only, so a 0700 folder above the real file would not protect it
there. Every request on such an entry asks here instead, with the caller's uid and
groups: search (x) permission on each directory from the store's root down to the file,
and read permission on the file. The check is the kernel's own for FUSE mounts: mode
bits, owner then group then others, root passing all but a file with no x bit; and,
where the store's files carry POSIX ACLs and the mount enforces them on real paths
(`posix_acl`, the default), the ACL's entries in the kernel's order (`acl_permits`):
otherwise an ACL that shuts one user out of a photo would still show it to them here.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import stat
import struct
from dataclasses import dataclass, field

from semfs.store.backing import BackingStore

log = logging.getLogger(__name__)

READ, SEARCH = 4, 1  # the r and x bits of one class of a mode
ACCESS_ACL = b"system.posix_acl_access"


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


def permits(caller: Caller, info: os.stat_result, wanted: int, acl: bytes | None = None) -> bool:
    """Whether `info`'s mode bits, or its access ACL (the raw `system.posix_acl_access`
    value, if it has one), give `caller` every permission in `wanted`."""
    if caller.uid == 0:
        is_file = not stat.S_ISDIR(info.st_mode)
        return not (wanted & SEARCH and is_file and not info.st_mode & 0o111)
    if acl is not None and caller.uid != info.st_uid:
        try:
            return acl_permits(caller, info, acl, wanted)
        except ValueError as error:  # the kernel would refuse too: it could not read it
            log.warning("unreadable ACL: %s", error)
            return False
    if caller.uid == info.st_uid:
        granted = info.st_mode >> 6
    elif info.st_gid == caller.gid or info.st_gid in caller.gids:
        granted = info.st_mode >> 3
    else:
        granted = info.st_mode
    return granted & wanted == wanted


# The ACL xattr's layout (linux/posix_acl_xattr.h): a version, then (tag, perm, id) entries.
ACL_VERSION = 2
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_HEADER, _ENTRY = struct.Struct("<I"), struct.Struct("<HHI")


def acl_permits(caller: Caller, info: os.stat_result, acl: bytes, wanted: int) -> bool:
    """The kernel's posix_acl_permission() for a caller who does not own the file: a
    named-user entry, else the owning and named groups (any one granting all of
    `wanted`), else others; named entries and groups are limited by the mask."""
    if len(acl) < _HEADER.size or (len(acl) - _HEADER.size) % _ENTRY.size:
        raise ValueError(f"{len(acl)} bytes is not an ACL")
    (version,) = _HEADER.unpack_from(acl)
    if version != ACL_VERSION:
        raise ValueError(f"ACL version {version}")
    entries: list[tuple[int, int, int]] = [
        _ENTRY.unpack_from(acl, at) for at in range(_HEADER.size, len(acl), _ENTRY.size)
    ]
    mask = next((perm for tag, perm, _ in entries if tag == MASK), 7)
    for tag, perm, uid in entries:
        if tag == USER and uid == caller.uid:
            return perm & mask & wanted == wanted
    groups = [perm for tag, perm, gid in entries
              if (tag == GROUP_OBJ and gid_matches(caller, info.st_gid))
              or (tag == GROUP and gid_matches(caller, gid))]  # fmt: skip
    if groups:
        return any(perm & mask & wanted == wanted for perm in groups)
    other = next((perm for tag, perm, _ in entries if tag == OTHER), 0)
    return other & wanted == wanted


def gid_matches(caller: Caller, gid: int) -> bool:
    return gid == caller.gid or gid in caller.gids


@dataclass
class Reach:
    """One caller's reach into the store, for one request: directories are looked at once
    however many entries of a listing lie under them."""

    store: BackingStore
    caller: Caller
    acls: bool = False  # the mount enforces the store's POSIX ACLs on real paths
    _directories: dict[bytes, bool] = field(default_factory=dict)

    def may_read(self, path: bytes) -> bool:
        """Search on every directory above store path `path`, and read on the file."""
        if self.caller.uid == 0:
            return True  # passes every check below: spare the stats
        try:
            if not all(self._may_search(directory) for directory in _ancestors(path)):
                return False
            return self._permits(path, READ)
        except OSError:
            return False  # gone meanwhile: nothing to show

    def _may_search(self, directory: bytes) -> bool:
        allowed = self._directories.get(directory)
        if allowed is None:
            allowed = self._permits(directory, SEARCH)
            self._directories[directory] = allowed
        return allowed

    def _permits(self, path: bytes, wanted: int) -> bool:
        info = self.store.lstat(path)
        return permits(self.caller, info, wanted, self._acl(path, info))

    def _acl(self, path: bytes, info: os.stat_result) -> bytes | None:
        if not self.acls or info.st_uid == self.caller.uid or stat.S_ISLNK(info.st_mode):
            return None  # the owner's entry is the mode's owner bits
        try:
            return self.store.getxattr(path, ACCESS_ACL)
        except OSError as error:
            if error.errno in (errno.ENODATA, errno.EOPNOTSUPP, errno.ENOTSUP):
                return None  # no ACL: the mode bits are all there is
            raise


def _ancestors(path: bytes) -> list[bytes]:
    """The store's root (b"") and each directory down to the one holding `path`."""
    parts = path.split(b"/")[:-1]
    return [b"/".join(parts[:depth]) for depth in range(len(parts) + 1)]


def check_view_entry(reach: Reach, real_path: bytes) -> None:
    """Refuse (EACCES) a request on a view entry that shows the stored file at
    `real_path`, if the caller cannot read it by that path."""
    if not reach.may_read(real_path):
        raise PermissionError(errno.EACCES, "not readable by its real path")
