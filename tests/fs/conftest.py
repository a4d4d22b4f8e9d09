"""Real mounts: semfs runs in a subprocess, tests use ordinary file operations on it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from semfs.config import FSTYPE
from semfs.daemon.mounttable import find_mount

MOUNT_TIMEOUT = 30.0

pytestmark = pytest.mark.mount

if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
    pytest.skip("mount tests need root and /dev/fuse", allow_module_level=True)


def semfs(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real `semfs` command."""
    result = subprocess.run(
        [sys.executable, "-m", "semfs", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"semfs {args} failed ({result.returncode}):\n{result.stderr}")
    return result


def is_mounted(mountpoint: Path) -> bool:
    entry = find_mount(str(mountpoint))
    return entry is not None and entry.fstype == FSTYPE


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.05)


@dataclass
class Mount:
    store: Path
    mountpoint: Path
    process: subprocess.Popen[bytes] | None
    log: Path

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(semfs("status", "--json", self.store).stdout)
        return result

    def wait_reconciled(self) -> dict[str, Any]:
        wait_for(lambda: self.status()["last_reconcile"] is not None, what="reconcile")
        return self.status()

    def wait_status(self, **expected: int) -> dict[str, Any]:
        def matches() -> bool:
            status = self.status()
            return all(status[key] == value for key, value in expected.items())

        wait_for(matches, what=f"status {expected}")
        return self.status()

    def unmount(self) -> None:
        semfs("unmount", self.mountpoint)
        if self.process is not None:
            self.process.wait(timeout=MOUNT_TIMEOUT)
        assert not is_mounted(self.mountpoint)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start_foreground(store: Path, mountpoint: Path, log: Path) -> Mount:
    mountpoint.mkdir(exist_ok=True)
    with open(log, "ab") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "semfs",
                "mount",
                "--foreground",
                "--debug",
                str(store),
                str(mountpoint),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + MOUNT_TIMEOUT
    while not is_mounted(mountpoint):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"mount did not come up:\n{log.read_text()}")
        time.sleep(0.05)
    return Mount(store, mountpoint, process, log)


def stop(mount: Mount) -> None:
    """Unmount whatever is left and make sure nothing went wrong inside the daemon."""
    if is_mounted(mount.mountpoint):
        subprocess.run(["fusermount3", "-u", "-z", str(mount.mountpoint)], check=False)
    if mount.process is not None and mount.process.poll() is None:
        try:
            mount.process.wait(timeout=MOUNT_TIMEOUT)
        except subprocess.TimeoutExpired:
            mount.process.send_signal(signal.SIGKILL)
            mount.process.wait()


# libfuse logs a failed reply to a release when the kernel no longer waits for it (the
# closing process or the mount went away first); nothing is lost, the file is closed.
_HARMLESS = re.compile(r".* ERROR pyfuse3: fuse_release(dir)?\(\): fuse_reply_\* failed.*\n?")


def assert_clean_log(mount: Mount) -> None:
    text = _HARMLESS.sub("", mount.log_text())
    assert "Traceback" not in text and " ERROR " not in text, f"daemon log:\n{text}"


@contextlib.contextmanager
def checked_mount(store: Path, tmp_path: Path) -> Iterator[Mount]:
    """A foreground mount, reconciled; unmounted after, its log checked for errors."""
    mount = start_foreground(store, tmp_path / "mnt", tmp_path / "daemon.log")
    try:
        mount.wait_reconciled()
        yield mount
    finally:
        stop(mount)
    assert_clean_log(mount)


@pytest.fixture
def open_to_all() -> Iterator[Path]:
    """A directory every user can reach (pytest's own tmp dirs are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="semfs-shared-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs, to fill up: a store on it meets a full disk."""
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(small)], check=True)
    try:
        yield small
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)


@pytest.fixture
def mounted(store: Path, tmp_path: Path) -> Iterator[Mount]:
    with checked_mount(store, tmp_path) as mount:
        yield mount


@dataclass
class Daemon:
    store: Path
    mountpoint: Path

    @property
    def pid(self) -> int:
        return int((self.store / ".semfs" / "mount.lock").read_text().split()[0])


@pytest.fixture
def daemon_mount(store: Path, tmp_path: Path) -> Iterator[Daemon]:
    """`semfs mount` as a user runs it (daemonised); unmounted, dead or alive, after."""
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    semfs("mount", store, mountpoint)
    try:
        yield Daemon(store, mountpoint)
    finally:
        semfs("unmount", mountpoint, check=False)
        if is_mounted(mountpoint):
            subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False)
