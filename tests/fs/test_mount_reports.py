"""What the daemon tells `semfs status` and `semfs config` (separate processes) through
its root's reserved xattrs, a full disk answered as one, and a mountpoint taken for its
store."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.fs.conftest import Daemon, semfs, wait_for
from tests.fs.test_crash_recovery import fill_up, make_images, mount_daemon
from tests.fs.test_search import INGEST_TIMEOUT

NOBODY = 65534


def report_of(command: str, target: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(semfs(command, "--json", target).stdout)
    return result


def test_a_query_saved_on_a_full_disk_is_enospc_and_status_shows_why(
    small_disk: Path, tmp_path: Path
) -> None:
    store, mountpoint = small_disk / "store", tmp_path / "mnt"
    make_images(store, 2)
    mount, _ = mount_daemon(store, mountpoint)
    try:
        wait_for(lambda: mount.status()["indexed"] == 2, INGEST_TIMEOUT, "ingest")
        fill_up(mountpoint / "filler.bin")
        # SQLite may still write into pages its files already hold: the first saves can
        # succeed. One that needs a new page meets the full disk.
        refused = None
        for number in range(200):
            try:
                os.mkdir(mountpoint / "search" / f"a photo of a rocket {number}")
            except OSError as error:
                refused = error
                break
        assert refused is not None, "200 queries saved on a full disk"
        assert refused.errno == errno.ENOSPC, refused  # was EIO
        # The log file is on the same full disk; the daemon still tells status.
        errors = report_of("status", store)["recent_errors"]
        full = [e for e in errors if "database or disk is full" in e["message"]]
        # Ingest may meet the full disk too and say it pauses (an ERROR): the save's own.
        saves = [e for e in full if e["message"].startswith("mkdir(")]
        assert saves, errors
        assert saves[-1]["level"] == "WARNING"
        assert "answered ENOSPC" in saves[-1]["message"]
        text = semfs("status", store).stdout
        assert re.search(r"^  \S+ \S+ WARNING semfs\.fs\.boundary: mkdir\(.*database or disk "
                         r"is full", text, re.M), text  # fmt: skip
        os.unlink(mountpoint / "filler.bin")
        os.mkdir(mountpoint / "search" / "a photo of a rocket, with space")
    finally:
        semfs("unmount", mountpoint)
    assert "Traceback" not in (store / ".semfs" / "mount.log").read_text()


def test_config_shows_what_a_live_mount_uses_and_where_each_value_comes_from(
    store: Path, tmp_path: Path
) -> None:
    config = store / ".semfs" / "config.toml"
    config.parent.mkdir()
    config.write_text("query_cache = 16\n")
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    semfs("mount", "--profile", "low-memory", "-o", "top_k=7", store, mountpoint)
    try:
        config.write_text("query_cache = 99\n")  # read when the mount started: still 16
        report = report_of("config", store)
        assert report["from_daemon"] and report["store"] == str(store)
        assert report["mount"]["mountpoint"] == str(mountpoint)
        settings = report["settings"]
        assert settings["profile"] == {"value": "low-memory", "source": "mount option"}
        assert settings["embedder"] == {
            "value": "onnx:paraphrase-MiniLM-L3-v2-int8", "source": "profile"
        }  # fmt: skip
        assert settings["ingest_batch"] == {"value": 2, "source": "profile"}
        assert settings["top_k"] == {"value": 7, "source": "mount option"}
        assert settings["query_cache"] == {"value": 16, "source": "config.toml"}
        assert settings["entry_timeout"] == {"value": 5.0, "source": "default"}
        # unset: the cut in force is the one calibrated for these models
        assert settings["max_distance"] == {
            "value": 1.05, "source": "default", "calibrated": True
        }  # fmt: skip
        assert report_of("config", mountpoint) == report  # the mountpoint names the store
        text = semfs("config", store).stdout
        assert text.startswith(f"# in force in the mount at {mountpoint} (pid ")
        for line in (
            "profile = 'low-memory' +# mount option",
            "embedder = 'onnx:paraphrase-MiniLM-L3-v2-int8' +# profile",
            "top_k = 7 +# mount option",
            "query_cache = 16 +# config.toml",
            r"max_distance = 1\.05 +# default \(unset: calibrated for the captioner and embedder\)",
        ):
            assert re.search(f"^{line}$", text, re.M), (line, text)
        # The three photos embedded: the store's vectors are the profile's embedder's.
        wait_for(lambda: report_of("status", store)["indexed"] == 3, INGEST_TIMEOUT, "ingest")
    finally:
        semfs("unmount", mountpoint)
    # Unmounted: what a mount with no options would use. The profile was a mount option,
    # so it is gone; the embedder is not set, so the store keeps its vectors' (and its cut).
    report = report_of("config", store)
    assert not report["from_daemon"] and not report["mount"]["active"]
    settings = report["settings"]
    assert settings["profile"] == {"value": "default", "source": "default"}
    assert settings["embedder"] == {"value": "onnx:paraphrase-MiniLM-L3-v2-int8", "source": "store"}
    assert settings["top_k"] == {"value": 50, "source": "default"}
    assert settings["query_cache"] == {"value": 99, "source": "config.toml"}
    assert settings["max_distance"] == {"value": 1.05, "source": "default", "calibrated": True}
    text = semfs("config", store).stdout
    assert text.startswith("# not mounted: ")
    line = r"embedder = 'onnx:paraphrase-MiniLM-L3-v2-int8' +# store \(unset: the embedder of"
    assert re.search(line, text), text
    # A new store: the default embedder and its calibrated cut.
    fresh = tmp_path / "new store"
    fresh.mkdir()
    settings = report_of("config", fresh)["settings"]
    assert settings["embedder"] == {
        "value": "sentence-transformers:all-MiniLM-L6-v2", "source": "default"
    }  # fmt: skip
    assert settings["max_distance"] == {"value": 1.125, "source": "default", "calibrated": True}


def test_status_of_a_mountpoint_reports_its_store(daemon_mount: Daemon) -> None:
    store, mountpoint = daemon_mount.store, daemon_mount.mountpoint
    wait_for(lambda: report_of("status", store)["last_reconcile"] is not None, what="reconcile")
    report = report_of("status", mountpoint)
    assert report["store"] == str(store)
    assert report["mount"] == {"active": True, "mountpoint": str(mountpoint),
                               "pid": daemon_mount.pid, "stale": False}  # fmt: skip
    assert report["images"] == 3
    text = semfs("status", mountpoint).stdout
    assert f"store:      {store}\n" in text and f"mounted:    at {mountpoint} " in text
    assert "images:     3\n" in text


def test_the_roots_reports_are_read_only_unlisted_and_errors_are_private(
    open_to_all: Path, store: Path
) -> None:
    shared_store = open_to_all / "store"
    shutil.copytree(store, shared_store)
    mountpoint = open_to_all / "mnt"
    mountpoint.mkdir()
    semfs("mount", "--allow-other", shared_store, mountpoint)
    try:
        settings = json.loads(os.getxattr(mountpoint, "user.semfs.settings"))
        assert settings["store"] == str(shared_store)
        assert settings["mountpoint"] == str(mountpoint)
        assert isinstance(json.loads(os.getxattr(mountpoint, "user.semfs.errors")), list)
        assert not [n for n in os.listxattr(mountpoint) if n.startswith("user.semfs.")]
        for name in ("user.semfs.errors", "user.semfs.settings"):
            with pytest.raises(PermissionError) as refused:
                os.setxattr(mountpoint, name, b"[]")
            assert refused.value.errno == errno.EPERM
            with pytest.raises(PermissionError) as refused:
                os.removexattr(mountpoint, name)
            assert refused.value.errno == errno.EPERM
        os.setxattr(mountpoint, "user.note", b"kept")  # the store root's own
        assert os.getxattr(shared_store, "user.note") == b"kept"

        def as_nobody(name: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["getfattr", "--only-values", "-n", name, str(mountpoint)],
                user=NOBODY, group=NOBODY, capture_output=True, text=True,
            )  # fmt: skip

        assert json.loads(as_nobody("user.semfs.settings").stdout)["store"] == str(shared_store)
        # The errors name paths and captions, as the 0600 log does.
        assert "Permission denied" in as_nobody("user.semfs.errors").stderr
    finally:
        semfs("unmount", mountpoint)
