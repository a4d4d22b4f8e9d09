"""The kernel-facing passthrough options through a real mount: POSIX ACLs of the store
enforced by the kernel (`posix_acl`, on by default), file capabilities passed through as
the store has them, and the opt-in writeback cache given as a mount option."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fs.conftest import Mount, checked_mount, semfs

NOBODY = 65534

needs_acl_tools = pytest.mark.skipif(
    shutil.which("setfacl") is None, reason="setfacl/getfacl (Debian package acl) missing"
)
needs_setcap = pytest.mark.skipif(
    shutil.which("setcap") is None, reason="setcap/getcap (Debian package libcap2-bin) missing"
)


def as_nobody(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, user=NOBODY, group=NOBODY, capture_output=True, text=True, errors="replace"
    )


def run(*command: str | Path) -> str:
    return subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture
def shared_mount(open_to_all: Path, store: Path) -> Iterator[Mount]:
    """A store and an allow_other mount that the user nobody can reach, default settings."""
    shared = open_to_all / "store"
    shutil.copytree(store, shared)
    shared.chmod(0o755)
    (shared / ".semfs").mkdir(exist_ok=True)
    (shared / ".semfs" / "config.toml").write_text("allow_other = true\n")
    with checked_mount(shared, open_to_all) as mount:
        yield mount


@needs_acl_tools
def test_acl_entries_of_the_store_hold_through_the_mount(shared_mount: Mount) -> None:
    store, mnt = shared_mount.store, shared_mount.mountpoint
    (store / "denied.txt").write_text("not for nobody\n")
    (store / "denied.txt").chmod(0o644)  # "others" may read: the ACL entry says no
    run("setfacl", "-m", "u:nobody:---", store / "denied.txt")
    (store / "granted.txt").write_text("for nobody\n")
    (store / "granted.txt").chmod(0o600)  # only root by the mode bits: the ACL says yes
    run("setfacl", "-m", "u:nobody:r--", store / "granted.txt")

    for root in (store, mnt):  # the mount answers as the store itself does
        assert as_nobody("cat", str(root / "denied.txt")).returncode != 0, root
        assert as_nobody("cat", str(root / "granted.txt")).stdout == "for nobody\n", root
    assert "user:nobody:---" in run("getfacl", "-c", mnt / "denied.txt")

    # An ACL changed through the mount counts at once (the kernel drops what it cached)
    # and lands in the store.
    (store / "open.txt").write_text("open\n")
    (store / "open.txt").chmod(0o644)
    assert as_nobody("cat", str(mnt / "open.txt")).returncode == 0
    run("setfacl", "-m", "u:nobody:---", mnt / "open.txt")
    assert as_nobody("cat", str(mnt / "open.txt")).returncode != 0
    assert "user:nobody:---" in run("getfacl", "-c", store / "open.txt")
    run("setfacl", "-b", mnt / "open.txt")
    assert as_nobody("cat", str(mnt / "open.txt")).returncode == 0


@needs_acl_tools
def test_default_acls_are_inherited_by_files_made_through_the_mount(
    shared_mount: Mount,
) -> None:
    store, mnt = shared_mount.store, shared_mount.mountpoint
    (store / "team").mkdir()
    run("setfacl", "-d", "-m", "u:nobody:r--", store / "team")
    (mnt / "team" / "new.txt").write_text("made through the mount\n")
    (mnt / "team" / "sub").mkdir()
    assert "user:nobody:r--" in run("getfacl", "-c", store / "team" / "new.txt")
    assert "default:user:nobody:r--" in run("getfacl", "-c", store / "team" / "sub")
    assert as_nobody("cat", str(mnt / "team" / "new.txt")).returncode == 0


@needs_setcap
def test_file_capabilities_read_back_and_a_write_drops_them(mounted: Mount) -> None:
    store, mnt = mounted.store, mounted.mountpoint
    tool = store / "tool"
    tool.write_bytes(b"\x7fELF not really\n")
    tool.chmod(0o755)
    run("setcap", "cap_net_raw+ep", tool)
    assert "cap_net_raw" in run("getcap", mnt / "tool")

    with open(mnt / "tool", "ab") as file:  # a write drops them, as in the store itself
        file.write(b"patched\n")
    assert run("getcap", tool).strip() == ""
    assert run("getcap", mnt / "tool").strip() == ""

    run("setcap", "cap_net_raw+ep", mnt / "tool")  # set through the mount: in the store
    assert "cap_net_raw" in run("getcap", tool)
    assert "cap_net_raw" in run("getcap", mnt / "tool")


def test_writeback_cache_as_a_mount_option_keeps_fsynced_data(store: Path, tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    semfs("mount", "-o", "writeback_cache=true", store, mnt)
    try:
        pid = int((store / ".semfs" / "mount.lock").read_text().split()[0])
        assert b"writeback_cache=true" in Path(f"/proc/{pid}/cmdline").read_bytes()
        payload = os.urandom(300_000)
        with open(mnt / "fresh.bin", "wb") as file:
            file.write(payload[:100_000])
            file.flush()
            os.fsync(file.fileno())
            assert (store / "fresh.bin").read_bytes() == payload[:100_000]
            file.write(payload[100_000:])
        assert (store / "fresh.bin").read_bytes() == payload
        assert (mnt / "fresh.bin").read_bytes() == payload
    finally:
        semfs("unmount", mnt)


def test_bench_times_a_variant_mount_in_the_same_run(tmp_path: Path) -> None:
    """`bench_passthrough.py --variant` mounts one more store with its options and gives
    each row a ratio for it (tiny sizes: that it runs, not what it measures)."""
    raw = tmp_path / "bench.json"
    script = Path(__file__).resolve().parents[2] / "scripts" / "bench_passthrough.py"
    result = subprocess.run(
        [sys.executable, str(script), "--smoke", "--only", "ls", "--only", "probe",
         "--variant", "noacl=posix_acl=false", "--dir", str(tmp_path), "--json", str(raw)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "| noacl / native |" in result.stdout
    rows = {row["key"]: row for row in json.loads(raw.read_text())["rows"]}
    assert sorted(rows) == ["ls-cold", "ls-warm", "probe"]
    for row in rows.values():
        assert row["ratio"] > 0 and row["variants"]["noacl"]["ratio"] > 0
    assert not any(tmp_path.glob("semfs-bench-*")), "the temporary stores were left behind"
