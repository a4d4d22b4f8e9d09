"""System calls the os module lacks."""

import ctypes
import ctypes.util
import os

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


# mkdir(2)/mkdirat(2) numbers, to tell `mkdir search/<q>` from `ls search/<q>` (see
# caller_is_making_a_directory). x86_64 keeps the legacy mkdir; the others have mkdirat.
_MKDIR_SYSCALLS = {
    "x86_64": frozenset({83, 258}),
    "aarch64": frozenset({34}),
    "riscv64": frozenset({34}),
    "i686": frozenset({39, 296}),
    "armv7l": frozenset({39, 323}),
}.get(os.uname().machine, frozenset())


def caller_is_making_a_directory(pid: int) -> bool:
    """Whether the thread that sent a FUSE request is inside mkdir(2) now.

    The kernel looks a name up before mkdir and fails with EEXIST if it exists; FUSE does
    not say why it looks up. The caller is blocked in its system call while we answer,
    so /proc/<tid>/syscall names it. False when unknown (another architecture, a thread
    that has gone)."""
    if pid <= 0 or not _MKDIR_SYSCALLS:
        return False
    try:
        with open(f"/proc/{pid}/syscall", "rb") as file:
            first = file.read(32).split(maxsplit=1)[:1]
    except OSError:
        return False
    return bool(first) and first[0].isdigit() and int(first[0]) in _MKDIR_SYSCALLS
