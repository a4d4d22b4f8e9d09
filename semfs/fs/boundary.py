"""The errno boundary of the FUSE handlers: what each exception a handler lets out
answers the kernel.

`OSError` becomes its errno. The catalog's SQLite errors are not OSErrors, yet the
common ones are about the disk, not a bug: a full disk (SQLITE_FULL) is ENOSPC, an I/O
error EIO, a database busy or locked EAGAIN, so that `mkdir search/<q>` on a full disk
says "No space left on device". Anything else is a bug: logged with its traceback and
answered with EIO, because an exception escaping a handler would end `pyfuse3.main` and
leave a dead mount.
"""

from __future__ import annotations

import errno
import functools
import logging
import sqlite3
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

import pyfuse3

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")
Handler = Callable[Concatenate[S, P], Coroutine[Any, Any, R]]

# SQLite's primary result codes (the low byte of an extended code) that name a state of
# the disk or of other connections, and the errno that says the same.
_SQLITE_ERRNOS = {
    sqlite3.SQLITE_FULL: errno.ENOSPC,
    sqlite3.SQLITE_IOERR: errno.EIO,
    sqlite3.SQLITE_BUSY: errno.EAGAIN,
    sqlite3.SQLITE_LOCKED: errno.EAGAIN,
    sqlite3.SQLITE_NOMEM: errno.ENOMEM,
    sqlite3.SQLITE_READONLY: errno.EROFS,
}


def sqlite_errno(error: sqlite3.Error) -> int | None:
    """The errno a SQLite error means, or None if it means a bug."""
    code = getattr(error, "sqlite_errorcode", None)
    return None if code is None else _SQLITE_ERRNOS.get(code & 0xFF)


def fuse_errors(handler: Handler[S, P, R]) -> Handler[S, P, R]:
    async def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await handler(self, *args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except OSError as error:
            raise pyfuse3.FUSEError(error.errno or errno.EIO) from None
        except sqlite3.Error as error:
            number = sqlite_errno(error)
            if number is None:
                log.exception("internal error in %s%r", handler.__name__, args)
                raise pyfuse3.FUSEError(errno.EIO) from None
            # Logged without a traceback: the disk's state, not a bug. WARNING and up also
            # reach `semfs status` when the log file cannot be written (the same full disk).
            level = logging.ERROR if number == errno.EIO else logging.WARNING
            log.log(level, "%s%r: the catalog refused: %s (%s); answered %s",
                    handler.__name__, args, error, getattr(error, "sqlite_errorname", "?"),
                    errno.errorcode[number])  # fmt: skip
            raise pyfuse3.FUSEError(number) from None
        except Exception:
            log.exception("internal error in %s%r", handler.__name__, args)
            raise pyfuse3.FUSEError(errno.EIO) from None

    functools.update_wrapper(wrapper, handler)
    return wrapper
