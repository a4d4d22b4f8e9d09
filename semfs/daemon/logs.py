"""Where the daemon's log goes: STORE/.semfs/mount.log, rotated, and the journal under
systemd (or the terminal when run in the foreground by hand); its last warnings and
errors also stay in memory, for `semfs status`."""

from __future__ import annotations

import collections
import io
import logging
import logging.handlers
import os
import sys
import threading
import time
import traceback
from typing import Any, cast

from semfs.config import Settings, private_opener

FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The journal stamps time itself; `<N>` is the syslog priority it reads off each line.
JOURNAL_FORMAT = "<%(priority)d>%(levelname)s %(name)s: %(message)s"
_SYSLOG_PRIORITY = {
    logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2,
}  # fmt: skip


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log whose new files are 0600 (it holds paths and captions), though the
    daemon runs with umask 0."""

    def _open(self) -> io.TextIOWrapper:
        stream = open(  # noqa: SIM115 - the handler keeps it, and closes it
            self.baseFilename, self.mode, encoding=self.encoding, errors=self.errors,
            opener=private_opener,
        )  # fmt: skip
        return cast(io.TextIOWrapper, stream)  # a text mode: the handler's own


class _StderrFollowingHandler(_PrivateRotatingFileHandler):
    """A rotating log whose file is also the process's stdout and stderr (a daemon
    started by `semfs mount`): after a rollover those follow to the new file, so what
    libraries print lands beside the log lines instead of in an old, rotated file."""

    def doRollover(self) -> None:
        super().doRollover()
        if self.stream is not None:
            for fd in (1, 2):
                os.dup2(self.stream.fileno(), fd)


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record.priority = _SYSLOG_PRIORITY.get(record.levelno, 6)
        return super().format(record)


class RecentRecords(logging.Handler):
    """The last warnings and errors logged, in memory: the log file may not take them
    (the disk that refused a write is often the one it is on), and `semfs status` asks
    the daemon for them (root_reports.py). Bounded in count and in length, so that all
    of them fit one xattr value (64 KiB)."""

    MESSAGE_MAX = 500  # characters of a message kept

    def __init__(self, capacity: int = 50) -> None:
        super().__init__(logging.WARNING)
        # GUARDED_BY(_records_lock): threads log, the trio thread reads
        self._records: collections.deque[dict[str, Any]] = collections.deque(maxlen=capacity)
        self._records_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:  # its last line: what failed
            message += ": " + traceback.format_exception_only(record.exc_info[1])[-1].strip()
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        kept = {"time": created, "level": record.levelname, "logger": record.name,
                "message": message[: self.MESSAGE_MAX]}  # fmt: skip
        with self._records_lock:
            self._records.append(kept)

    def records(self) -> list[dict[str, Any]]:
        """Oldest first."""
        with self._records_lock:
            return list(self._records)


def keep_recent_records(capacity: int = 50) -> RecentRecords:
    """Keep the last warnings and errors of every logger in memory, from now on."""
    handler = RecentRecords(capacity)
    logging.getLogger().addHandler(handler)
    return handler


def stderr_is_journal() -> bool:
    """Whether systemd connected stderr to the journal ($JOURNAL_STREAM names it)."""
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        info = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return f"{info.st_dev}:{info.st_ino}" == f"{device}:{inode}"


def setup_daemon_logging(settings: Settings, debug: bool, stderr_is_log_file: bool) -> None:
    """Log to the store's rotating mount.log, and to stderr unless stderr *is* that file
    (the daemon `semfs mount` starts). Under systemd stderr is the journal."""
    settings.make_state_dir()
    root = logging.getLogger()
    for handler in root.handlers[:]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    handler_class = _StderrFollowingHandler if stderr_is_log_file else _PrivateRotatingFileHandler
    file_handler = handler_class(
        settings.log_path,
        maxBytes=settings.log_max_bytes,
        backupCount=settings.log_backups,
        encoding="utf-8",
    )
    file_handler.setFormatter(logging.Formatter(FILE_FORMAT))
    root.addHandler(file_handler)
    if stderr_is_log_file:
        return
    console = logging.StreamHandler(sys.stderr)
    if stderr_is_journal():
        console.setFormatter(_JournalFormatter(JOURNAL_FORMAT))
    else:
        console.setFormatter(logging.Formatter(FILE_FORMAT))
    root.addHandler(console)
