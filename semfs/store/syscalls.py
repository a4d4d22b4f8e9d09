"""System calls the os module lacks."""

import ctypes
import ctypes.util
import os
from dataclasses import dataclass

RENAME_NOREPLACE = 1  # <linux/fs.h>; pyfuse3 passes the kernel's flags through as they are
RENAME_EXCHANGE = 2

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                            ctypes.c_uint]  # fmt: skip
_libc.renameat2.restype = ctypes.c_int


def renameat2(old_dir: int, old: bytes, new_dir: int, new: bytes, flags: int) -> None:
    """renameat(2) with RENAME_NOREPLACE / RENAME_EXCHANGE; plain os.rename when flags is 0."""
    if not flags:
        os.rename(old, new, src_dir_fd=old_dir, dst_dir_fd=new_dir)
        return
    if _libc.renameat2(old_dir, old, new_dir, new, flags) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error), old, None, new)


# openat2(2), Linux 5.6+: resolve a path strictly below a directory, through no symlink.
_SYS_OPENAT2 = 437  # the same number on every Linux architecture (unified syscall table)
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]  # fmt: skip


_libc.syscall.restype = ctypes.c_long


def openat2(directory: int, path: bytes, flags: int, resolve: int) -> int:
    how = _OpenHow(flags, 0, resolve)
    fd = _libc.syscall(
        _SYS_OPENAT2, directory, ctypes.c_char_p(path), ctypes.byref(how), ctypes.sizeof(how)
    )
    if fd < 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error), path)
    return int(fd)


# The system calls that make a name, to tell `mkdir search/<q>` or `ln -s x search/<q>`
# from `ls search/<q>` (see caller_is_making), by number on each architecture.


@dataclass(frozen=True)
class _Call:
    path: int  # the argument that holds the path of the new name
    flags: int | None = None  # open's flags: it makes a name only with O_CREAT
    directory: bool = False  # mkdir: the only call that makes `name/`


# The new name's path is argument 0 of mkdir, mknod, creat, open; 1 of mkdirat, mknodat,
# openat, and of symlink, link, rename (their second path); 2 of symlinkat; 3 of linkat,
# renameat, renameat2 (olddirfd, old, newdirfd, new).
_P0, _P1, _P2, _P3 = _Call(0), _Call(1), _Call(2), _Call(3)
_MKDIR, _MKDIRAT = _Call(0, directory=True), _Call(1, directory=True)
_OPEN, _OPENAT = _Call(0, flags=1), _Call(1, flags=2)
# The generic table (arm64, riscv64) has only the *at calls: mkdirat, mknodat, symlinkat,
# linkat, renameat, renameat2, openat.
_GENERIC = {34: _MKDIRAT, 33: _P1, 36: _P2, 37: _P3, 38: _P3, 276: _P3, 56: _OPENAT}
_NAMING_CALLS: dict[int, _Call] = {
    # mkdir, mkdirat, mknod, mknodat, symlink, symlinkat, link, linkat, rename, renameat,
    # renameat2, creat, open, openat
    "x86_64": {83: _MKDIR, 258: _MKDIRAT, 133: _P0, 259: _P1, 88: _P1, 266: _P2, 86: _P1, 265: _P3,
               82: _P1, 264: _P3, 316: _P3, 85: _P0, 2: _OPEN, 257: _OPENAT},
    "i686": {39: _MKDIR, 296: _MKDIRAT, 14: _P0, 297: _P1, 83: _P1, 304: _P2, 9: _P1, 303: _P3,
             38: _P1, 302: _P3, 353: _P3, 8: _P0, 5: _OPEN, 295: _OPENAT},
    "armv7l": {39: _MKDIR, 323: _MKDIRAT, 14: _P0, 324: _P1, 83: _P1, 331: _P2, 9: _P1, 330: _P3,
               38: _P1, 329: _P3, 382: _P3, 8: _P0, 5: _OPEN, 322: _OPENAT},
    "aarch64": _GENERIC,
    "riscv64": _GENERIC,
}.get(os.uname().machine, {})  # fmt: skip
_PATH_MAX = 4096


def caller_is_making(pid: int, name: bytes) -> bool:
    """Whether the thread that sent a FUSE request is making `name` now: inside mkdir(2),
    mknod, symlink, link, rename or an open with O_CREAT, whose path ends in `name`.

    The kernel looks a name up before making it and fails with EEXIST if it exists; FUSE
    does not say why it looks up. The caller is blocked in its system call while we
    answer, so /proc/<tid>/syscall names the call and its arguments, and /proc/<tid>/mem
    holds its path: a lookup of a folder on the way (`search/q` of `ln -s x search/q/y`)
    is not the name being made. False when unknown (another architecture, a thread that
    has gone)."""
    if pid <= 0 or not _NAMING_CALLS:
        return False
    try:
        with open(f"/proc/{pid}/syscall", "rb") as file:
            fields = file.read(256).split()
    except OSError:
        return False
    call = _NAMING_CALLS.get(int(fields[0])) if fields and fields[0].isdigit() else None
    if call is None:
        return False
    arguments = [int(field, 16) for field in fields[1:7]]
    if call.flags is not None and not arguments[call.flags] & os.O_CREAT:
        return False
    path = _read_string(pid, arguments[call.path])
    if path is None:
        return True  # unreadable: trust the call, as before paths were read
    if path.endswith(b"/") and not call.directory:
        return False  # `ln -s x search/q/` means into q: the kernel says ENOENT if absent
    return os.path.basename(path.rstrip(b"/")) == name


def _read_string(pid: int, address: int) -> bytes | None:
    """The NUL-terminated string at `address` in thread `pid`'s memory, if readable."""
    try:
        fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.pread(fd, _PATH_MAX, address)
    except (OSError, OverflowError):
        return None
    finally:
        os.close(fd)
    end = data.find(b"\0")
    return data[:end] if end >= 0 else None
