"""`semfs doctor`: each problem is found, named, and comes with a fix."""

from __future__ import annotations

import shlex
import subprocess
import sys
from functools import partial
from pathlib import Path

from semfs.commands.doctor import Finding, mount_helper_check, report_text, run_checks
from semfs.config import Settings


def by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {finding.check: finding for finding in findings}


def test_a_healthy_machine_and_store(store: Path, tmp_path: Path) -> None:
    Settings.load(store).make_state_dir()
    (tmp_path / "mnt").mkdir()
    findings = by_check(run_checks(str(store), str(tmp_path / "mnt"), models=True))
    for name in ("kernel", "/dev/fuse", "fusermount3", "pyfuse3", "mount helper", "store",
                 "state directory", "disk space", "mountpoint", "captioner", "embedder",
                 "image features"):  # fmt: skip
        assert findings[name].ok, findings[name]
    assert "384-d vector" in findings["embedder"].detail
    assert "256-d vector" in findings["image features"].detail
    assert report_text(list(findings.values())).endswith("all good")


def test_problems_are_named_with_their_fix(store: Path, tmp_path: Path) -> None:
    state = Settings.load(store).make_state_dir()
    state.chmod(0o755)  # readable by everyone: the captions of every photo
    (state / "config.toml").write_text(
        'captioner = "transformers:/no/such/model"\nimage_features = "no-such-net"\n'
    )
    (state / "catalog.sqlite3").write_bytes(b"not a database, but 100 bytes long " * 3)
    findings = run_checks(str(store), str(tmp_path / "missing"), models=True)
    failed = {finding.check: finding for finding in findings if not finding.ok}
    assert set(failed) == {"state directory", "catalog", "mountpoint", "captioner",
                           "image features"}  # fmt: skip
    assert failed["state directory"].fix.startswith(f"chmod 700 {state}")
    assert "semfs check STORE --repair" in failed["catalog"].fix
    assert failed["mountpoint"].fix == f"mkdir -p {tmp_path / 'missing'}"
    assert "/no/such/model" in failed["captioner"].detail
    assert "no-such-net" in failed["image features"].detail
    text = report_text(findings)
    assert "FAIL  captioner" in text and "      fix: " in text and text.endswith("5 problems found")


def test_a_store_that_is_not_there(tmp_path: Path) -> None:
    findings = run_checks(str(tmp_path / "nowhere"), None, models=False)
    store = by_check(findings)["store"]
    assert not store.ok and "is not a directory" in store.detail


def test_mount_helper_is_what_mount_finds_on_its_own_path(tmp_path: Path) -> None:
    """mount(8) runs `semfs` from a fixed PATH (here: a temporary bin folder, which is
    also where the fix links it): missing is a problem once fstab has a semfs line,
    another installation too; the fix, run as given, makes it this one."""
    bin_dir, fstab = tmp_path / "bin", tmp_path / "fstab"
    bin_dir.mkdir()
    fstab.write_text("# <file system> <mount point> <type>\n/dev/sda1 / ext4 defaults 0 1\n")
    this = str(Path(sys.executable).parent / "semfs")
    check = partial(mount_helper_check, search_path=str(bin_dir), fstab=fstab,
                    link_dir=bin_dir, program=this)  # fmt: skip
    link_command = f"ln -sfn {this} {bin_dir / 'semfs'}"

    unneeded = check()  # no fstab line needs it: fine, with the way to do it
    assert unneeded.ok and "no semfs on mount(8)'s PATH" in unneeded.detail
    assert link_command in unneeded.detail
    fstab.write_text(fstab.read_text() + "/srv/photos /mnt/photos fuse.semfs defaults 0 0\n")
    missing = check()
    assert not missing.ok and f"{fstab}'s semfs line needs" in missing.detail
    assert missing.fix.startswith(link_command)
    assert not check(required=True, fstab=tmp_path / "none").ok  # as install.sh asks

    other = tmp_path / "old-venv" / "semfs"
    other.parent.mkdir()
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    (bin_dir / "semfs").symlink_to(other)
    foreign = check()
    assert not foreign.ok and f"mount(8) runs {bin_dir / 'semfs'}, not" in foreign.detail

    subprocess.run(shlex.split(foreign.fix.partition(" (")[0]), check=True)
    linked = check()
    assert linked.ok and linked.detail == f"mount(8) finds semfs at {bin_dir / 'semfs'}"
    assert (bin_dir / "semfs").resolve() == Path(this).resolve()
