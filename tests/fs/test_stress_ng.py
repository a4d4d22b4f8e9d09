"""Debian's stress-ng filesystem stressors, with verification on, against a real mount.

They run a group at a time on one directory of the mount; each must report no failure and
do work (bogo ops > 0), the daemon must stay up with a clean log, and the tree must be
removable afterwards. Left out, with the reason:
- fiemap: FUSE has no FS_IOC_FIEMAP; stress-ng skips it on any FUSE filesystem.
- fsize: it expects EFBIG from fallocate past the caller's RLIMIT_FSIZE, but the limit
  belongs to the calling process, and FUSE hands the fallocate to the daemon, which has
  none (stress-ng only logs this; it is how every FUSE filesystem behaves).
- bind-mount, binderfs, dnotify, fanotify, inotify, ioprio, procfs, verity: not about
  the filesystem under test (mount namespaces, binder, kernel notification of the
  directory, /proc) or unsupported by FUSE (fs-verity).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.fs.conftest import Mount

STRESSORS = [
    "access", "chattr", "chdir", "chmod", "chown", "copy-file", "dentry", "dir", "dirdeep",
    "dirmany", "dup", "fallocate", "fcntl", "file-ioctl", "filename", "flock", "fpunch",
    "fstat", "getdent", "handle", "hdd", "inode-flags", "io", "iomix", "lease", "link",
    "locka", "lockf", "lockofd", "mknod", "open", "rename", "symlink", "sync-file", "touch",
    "utime", "xattr",
]  # fmt: skip
# Big files by default (a GiB for some): smaller ones keep each bogo op within seconds.
SIZES = ["--fallocate-bytes", "1m", "--iomix-bytes", "8m", "--sync-file-bytes", "8m",
         "--hdd-bytes", "8m"]  # fmt: skip
SECONDS = 8  # per group; groups of a few stressors, so that none starves on two cores
GROUP = 8
# pyfuse3 has no fallocate handler: the kernel answers EOPNOTSUPP and these fall back to
# writing the bytes through the mount, slowly; they get a group and more time of their own.
SLOW = ["fallocate", "fpunch", "iomix", "sync-file"]
NO_BOGO_OPS = {"inode-flags"}  # this stress-ng counts none, on any filesystem
# filename first probes which characters the filesystem takes, a file each: in a full
# group it got no op done in its seconds, so it goes last, into the small group.
LAST = ["filename"]

pytestmark = pytest.mark.skipif(shutil.which("stress-ng") is None, reason="needs stress-ng")


def test_filesystem_stressors_pass_with_verification(mounted: Mount, tmp_path: Path) -> None:
    work = mounted.mountpoint / "stress"
    work.mkdir()
    ops: dict[str, int] = {}
    quick = [name for name in STRESSORS if name not in SLOW + LAST] + LAST
    groups = [(quick[i : i + GROUP], SECONDS) for i in range(0, len(quick), GROUP)]
    for number, (group, seconds) in enumerate([*groups, (SLOW, 2 * SECONDS)]):
        ops.update(run_stressors(group, seconds, work, tmp_path / f"metrics-{number}.yaml"))
    assert sorted(ops) == sorted(STRESSORS), ops
    # On a loaded machine a stressor can get no bogo op done in its group's seconds
    # (seen with filename and fallocate): it gets one more run, alone and longer.
    for name in [name for name, count in ops.items() if count <= 0 and name not in NO_BOGO_OPS]:
        ops.update(run_stressors([name], 3 * SECONDS, work, tmp_path / f"metrics-{name}.yaml"))
    idle = [name for name, count in ops.items() if count <= 0 and name not in NO_BOGO_OPS]
    assert not idle, f"stressors that did no work: {idle}"

    assert mounted.process is not None and mounted.process.poll() is None  # still serving
    shutil.rmtree(work)
    assert not (mounted.store / "stress").exists()
    assert "stress" not in os.listdir(mounted.mountpoint)


def run_stressors(group: list[str], seconds: int, work: Path, metrics: Path) -> dict[str, int]:
    """Bogo ops of each stressor of `group`, run together; fails on any failure."""
    command = ["stress-ng", "--temp-path", str(work), "--verify", "--metrics-brief",
               "--timeout", str(seconds), "--yaml", str(metrics), *SIZES]  # fmt: skip
    for stressor in group:
        command += [f"--{stressor}", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds * 20)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "successful run completed" in output, output
    assert not [line for line in output.splitlines() if "fail" in line.lower()], output
    report = yaml.safe_load(metrics.read_text())
    return {entry["stressor"]: entry["bogo-ops"] for entry in report["metrics"]}
