"""The daemon's log: rotated in STORE/.semfs/, stderr following it, journal priorities."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DAEMON = """
import logging, sys
from semfs.config import Settings
from semfs.daemon.logs import setup_daemon_logging
settings = Settings.load(sys.argv[1], log_max_bytes=2000, log_backups=2)
setup_daemon_logging(settings, debug=False, stderr_is_log_file=sys.argv[2] == "file")
for i in range(100):
    logging.getLogger("semfs.test").info("line %03d %s", i, "x" * 40)
print("printed by a library after the rotations", file=sys.stderr, flush=True)
logging.getLogger("semfs.test").warning("the last line")
"""


def run_daemon(store: Path, mode: str, **env: str) -> subprocess.CompletedProcess[str]:
    (store / ".semfs").mkdir(exist_ok=True)
    log = store / ".semfs" / "mount.log"
    if mode == "file":  # as `semfs mount` starts its daemon: stderr is the log file
        with open(log, "ab") as stderr:
            return subprocess.run([sys.executable, "-c", DAEMON, str(store), mode],
                                  stdout=stderr, stderr=stderr, text=True, check=True)  # fmt: skip
    return subprocess.run([sys.executable, "-c", DAEMON, str(store), mode], capture_output=True,
                          text=True, check=True, env={**os.environ, **env})  # fmt: skip


def test_the_log_rotates_and_stderr_follows_it(tmp_path: Path) -> None:
    run_daemon(tmp_path, "file")
    state = tmp_path / ".semfs"
    assert sorted(p.name for p in state.glob("mount.log*")) == [
        "mount.log", "mount.log.1", "mount.log.2",
    ]  # fmt: skip
    assert all(p.stat().st_size <= 2200 for p in state.glob("mount.log*"))
    current = (state / "mount.log").read_text()
    assert "printed by a library after the rotations" in current
    assert "WARNING semfs.test: the last line" in current
    assert "line 099" in current and "line 000" not in current  # the oldest went


def test_stderr_gets_journal_priorities_under_systemd(tmp_path: Path) -> None:
    # systemd sets JOURNAL_STREAM to the device and inode of the stderr it connected.
    probe = "import os, sys; s = os.fstat(2); print(f'{s.st_dev}:{s.st_ino}')"
    stderr_file = tmp_path / "stderr"
    with open(stderr_file, "w") as stderr:
        identity = subprocess.run([sys.executable, "-c", probe], stderr=stderr, text=True,
                                  stdout=subprocess.PIPE, check=True)  # fmt: skip
        subprocess.run(
            [sys.executable, "-c", DAEMON, str(tmp_path), "journal"],
            stderr=stderr, stdout=subprocess.DEVNULL, check=True,
            env={**os.environ, "JOURNAL_STREAM": identity.stdout.strip()},
        )  # fmt: skip
    journal = stderr_file.read_text()
    assert "<6>INFO semfs.test: line 000" in journal
    assert "<4>WARNING semfs.test: the last line" in journal
    assert "the last line" in (tmp_path / ".semfs" / "mount.log").read_text()  # and the file


def test_a_terminal_gets_timestamps_and_the_file_too(tmp_path: Path) -> None:
    result = run_daemon(tmp_path, "terminal")
    assert " WARNING semfs.test: the last line" in result.stderr
    assert not result.stderr.startswith("<")
