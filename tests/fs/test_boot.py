"""Mounting at boot, under a real systemd.

A fresh systemd runs as PID 1 of its own PID and mount namespace (as in a container),
with only the units of a minimal boot: the machine's own units would set up the system
again (systemd-tmpfiles-setup empties /tmp). The units and the fstab line are installed
into that namespace by `semfs install-service` as a user would run it, so the host's
/etc and /usr/local/bin are left alone. Then:
the template unit mounts, logs to the journal and to STORE/.semfs/mount.log, comes back
after the daemon is killed, and unmounts cleanly on stop; the fstab line mounts through
mount(8) and the mount.fuse3 helper, by hand and as the `.mount` unit systemd makes of it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from semfs.daemon.service import escape_path
from tests.fs.conftest import semfs

SYSTEMD = Path("/lib/systemd/systemd")
SEMFS = str(Path(sys.executable).parent / "semfs")  # what install-service links
STARTUP_TIMEOUT = 30.0
SERVICE_TIMEOUT = 90.0  # starting a unit includes Python and model start-up

if not SYSTEMD.exists() or shutil.which("unshare") is None:
    pytest.skip("needs systemd and unshare", allow_module_level=True)


# The whole boot: empty targets, and journald (its socket copied as it is).
EMPTY_TARGETS = (
    "semfs-test.target", "sysinit.target", "basic.target", "sockets.target",
    "multi-user.target", "default.target", "local-fs.target", "local-fs-pre.target",
    "remote-fs.target", "network.target", "shutdown.target", "umount.target",
)  # fmt: skip
JOURNALD = """\
[Unit]
DefaultDependencies=no
Requires=systemd-journald.socket
After=systemd-journald.socket

[Service]
Type=notify
ExecStart=/lib/systemd/systemd-journald
Sockets=systemd-journald.socket
RuntimeDirectory=systemd/journal
RuntimeDirectoryPreserve=yes
StandardOutput=null
Restart=always
"""


def minimal_units(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for target in EMPTY_TARGETS:
        (directory / target).write_text(f"[Unit]\nDescription={target}\n")
    (directory / "systemd-journald.service").write_text(JOURNALD)
    shutil.copy("/lib/systemd/system/systemd-journald.socket", directory)
    return directory


class Namespace:
    """A systemd as PID 1 of new PID and mount namespaces; commands run inside."""

    def __init__(self, units: Path) -> None:
        self._dev_log_existed = os.path.lexists("/dev/log")
        # Installed units, what the generators make of fstab, then the minimal boot.
        unit_path = f"/etc/systemd/system:/run/systemd/generator:{minimal_units(units)}"
        self.process = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--kill-child", "--mount", "--mount-proc",
             "--propagation", "private", str(SYSTEMD), "--system",
             "--unit=semfs-test.target"],
            env={**os.environ, "container": "semfs-test", "SYSTEMD_UNIT_PATH": unit_path},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.pid = self._systemd_pid()
        self._wait_running()

    def _systemd_pid(self) -> int:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError):
                if pids := children.read_text().split():
                    return int(pids[0])
            time.sleep(0.05)
        raise AssertionError("systemd did not start")

    def _wait_running(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while self.run("systemctl", "is-system-running", check=False).stdout.strip() not in (
            "running",
            "degraded",
        ):
            assert time.monotonic() < deadline, "systemd never finished starting"
            time.sleep(0.1)

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["nsenter", "-t", str(self.pid), "-m", "-p", *command],
            capture_output=True,
            text=True,
            timeout=SERVICE_TIMEOUT + 30,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{command} failed ({result.returncode}):\n{result.stderr}")
        return result

    def unit_property(self, unit: str, name: str) -> str:
        return self.run("systemctl", "show", "-p", name, "--value", unit).stdout.strip()

    def fstype_at(self, mountpoint: Path) -> str:
        found = self.run("findmnt", "-n", "-o", "FSTYPE", "--mountpoint", str(mountpoint),
                         check=False)  # fmt: skip
        return found.stdout.strip()

    def wait(self, what: str, predicate: object, timeout: float = SERVICE_TIMEOUT) -> None:
        assert callable(predicate)
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.2)

    def close(self) -> None:
        self.process.kill()  # --kill-child takes systemd, and the namespace with it
        self.process.wait(timeout=30)
        if not self._dev_log_existed and os.path.islink("/dev/log"):
            os.unlink("/dev/log")  # journald's link, made in the shared /dev


@pytest.fixture(scope="module")
def systemd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Namespace]:
    scratch = tmp_path_factory.mktemp("systemd")
    (scratch / "fstab").write_text("# the namespace's own fstab\n")
    namespace = Namespace(scratch / "units")
    try:
        # What installing writes goes to the namespace's own copies of these.
        namespace.run("mount", "-t", "tmpfs", "tmpfs", "/etc/systemd/system")
        namespace.run("mount", "-t", "tmpfs", "tmpfs", "/usr/local/bin")
        namespace.run("mount", "--bind", str(scratch / "fstab"), "/etc/fstab")
        namespace.run("systemctl", "daemon-reload")
        namespace.run("systemctl", "start", "systemd-journald.service")
        yield namespace
    finally:
        namespace.close()


def test_template_unit_mounts_restarts_after_a_crash_and_stops_cleanly(
    systemd: Namespace, store: Path, tmp_path: Path
) -> None:
    mountpoint = tmp_path / "my photos"  # a space: escaped in the unit name
    unit = f"semfs@{escape_path(str(mountpoint))}.service"
    installed = systemd.run(SEMFS, "install-service", str(store), str(mountpoint), "-o", "top_k=3")
    assert f"ran systemctl enable --now {shlex.quote(unit)}" in installed.stdout
    # Type=notify: enabled and started means mounted.
    assert systemd.unit_property(unit, "ActiveState") == "active"
    assert systemd.fstype_at(mountpoint) == "fuse.semfs"
    assert "rocket.jpg" in systemd.run("ls", str(mountpoint)).stdout
    assert systemd.run("systemctl", "is-enabled", unit).stdout.strip() == "enabled"
    systemd.wait(
        "the photos indexed and searchable through the unit's mount",
        lambda: "01 coffee.png" in systemd.run("ls", f"{mountpoint}/search/a cup of coffee").stdout,
    )
    daemon = systemd.unit_property(unit, "MainPID")
    assert "top_k=3" in systemd.run("cat", f"/proc/{daemon}/cmdline").stdout  # the options
    journal = systemd.run("journalctl", "--no-pager", "-u", unit).stdout
    assert f"mounted {store} at {mountpoint}" in journal
    assert "mounted" in (store / ".semfs" / "mount.log").read_text()

    # A crash: the daemon is killed; systemd clears the dead mount and starts it again.
    first_pid = systemd.unit_property(unit, "MainPID")
    systemd.run("kill", "-9", first_pid)
    systemd.wait(
        "a restart",
        lambda: (
            systemd.unit_property(unit, "NRestarts") == "1"
            and systemd.unit_property(unit, "ActiveState") == "active"
        ),
    )
    assert systemd.unit_property(unit, "MainPID") != first_pid
    assert systemd.fstype_at(mountpoint) == "fuse.semfs"
    systemd.wait(
        "search after the restart",
        lambda: "01 coffee.png" in systemd.run("ls", f"{mountpoint}/search/a cup of coffee").stdout,
    )

    # A clean stop: unmounted, the catalog consistent, nothing lost.
    systemd.run("systemctl", "stop", unit)
    assert systemd.unit_property(unit, "ActiveState") == "inactive"
    assert systemd.fstype_at(mountpoint) == ""
    assert "unmounted" in systemd.run("journalctl", "--no-pager", "-u", unit).stdout
    assert semfs("check", store).returncode == 0


def test_fstab_line_mounts_through_mount_helper_and_as_a_mount_unit(
    systemd: Namespace, store: Path, tmp_path: Path
) -> None:
    mountpoint = tmp_path / "mnt"
    installed = systemd.run(SEMFS, "install-service", "--fstab", str(store),
                            str(mountpoint), "-o", "top_k=2")  # fmt: skip
    assert "appended to /etc/fstab" in installed.stdout
    line = systemd.run("cat", "/etc/fstab").stdout.splitlines()[-1]
    assert line.split()[:3] == [str(store), str(mountpoint), "fuse.semfs"]

    # By hand: mount(8) finds the line, runs mount.fuse3, which runs semfs from the PATH.
    systemd.run("mount", str(mountpoint))
    assert systemd.fstype_at(mountpoint) == "fuse.semfs"
    assert "rocket.jpg" in systemd.run("ls", str(mountpoint)).stdout
    systemd.run("umount", str(mountpoint))
    assert systemd.fstype_at(mountpoint) == ""

    # At boot: systemd's fstab generator makes a .mount unit of the line.
    systemd.run("systemctl", "daemon-reload")
    mount_unit = f"{escape_path(str(mountpoint))}.mount"
    systemd.run("systemctl", "start", mount_unit)
    assert systemd.fstype_at(mountpoint) == "fuse.semfs"
    systemd.wait(
        "search through the mount unit",
        lambda: "01 coffee.png" in systemd.run("ls", f"{mountpoint}/search/a cup of coffee").stdout,
    )
    systemd.run("systemctl", "stop", mount_unit)
    assert systemd.fstype_at(mountpoint) == ""
    assert semfs("check", store).returncode == 0
