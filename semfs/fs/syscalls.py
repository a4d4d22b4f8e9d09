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
