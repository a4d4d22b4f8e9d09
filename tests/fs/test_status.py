"""`semfs status` and `semfs doctor` on a live mount and on a dead one."""

from __future__ import annotations

import errno
import json
import os
import signal
from pathlib import Path

from semfs import __version__
from tests.fs.conftest import Daemon, semfs, wait_for
from tests.fs.test_search import INGEST_TIMEOUT


def status(store: Path) -> dict[str, object]:
    result: dict[str, object] = json.loads(semfs("status", "--json", store).stdout)
    return result


def test_status_reports_counts_failures_models_index_and_the_mount(
    daemon_mount: Daemon,
) -> None:
    (daemon_mount.mountpoint / "fake.jpg").write_text("a shopping list, not a photo\n")
    wait_for(lambda: status(daemon_mount.store)["queued"] == 0 and
             status(daemon_mount.store)["indexed"] == 3, INGEST_TIMEOUT, "ingest")  # fmt: skip
    report = status(daemon_mount.store)
    assert report["mount"] == {
        "active": True, "mountpoint": str(daemon_mount.mountpoint), "pid": daemon_mount.pid,
        "stale": False,
    }  # fmt: skip
    assert (report["images"], report["indexed"], report["failed"]) == (4, 3, 1)
    assert report["failures"] == [
        {
            "path": "fake.jpg",
            "reason": "not an image Pillow can read (unknown or unsupported format)",
        }
    ]
    assert report["captioner"] == "classifier:efficientnet-lite0+wide+gloss"
    assert report["embedder"] == "sentence-transformers:all-MiniLM-L6-v2"
    index = report["index"]
    assert isinstance(index, dict) and index["dimensions"] == 384
    assert index["vectors"] == 3 and index["base_vectors"] + index["exact_vectors"] == 3
    text = semfs("status", daemon_mount.store).stdout
    assert f"mounted:    at {daemon_mount.mountpoint} (pid {daemon_mount.pid})" in text
    assert "failed: fake.jpg: " in text


def test_a_dead_mount_is_reported_with_what_to_do(daemon_mount: Daemon) -> None:
    os.kill(daemon_mount.pid, signal.SIGKILL)
    wait_for(lambda: status(daemon_mount.store)["mount"]["stale"], what="a dead mount")  # type: ignore[index]
    assert status(daemon_mount.store)["mount"]["active"] is False  # type: ignore[index]
    assert "DEAD mount" in semfs("status", daemon_mount.store).stdout
    doctor = semfs("doctor", "--no-models", daemon_mount.store, daemon_mount.mountpoint,
                   check=False)  # fmt: skip
    assert doctor.returncode == 1
    assert f"fix: semfs unmount --lazy {daemon_mount.mountpoint}" in doctor.stdout
    semfs("unmount", "--lazy", daemon_mount.mountpoint)
    assert (
        semfs("doctor", "--no-models", daemon_mount.store, daemon_mount.mountpoint).returncode == 0
    )


def test_version() -> None:
    assert semfs("--version").stdout.strip() == f"semfs {__version__}"


def test_mount_options_reach_the_daemon(store: Path, tmp_path: Path) -> None:
    """`-o` as mount(8) passes it: generic options ignored, ro honoured, settings set."""
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    semfs(
        "mount", store, mountpoint, "-o", "rw,nosuid,nodev,ro,top_k=1,threshold=2,search_dir=find"
    )
    try:
        listed = ["animals", "coffee.png", "find", "notes.txt", "places", "rocket.jpg",
                  "similar", "tags"]  # fmt: skip
        assert sorted(os.listdir(mountpoint)) == listed
        try:
            (mountpoint / "new.txt").write_text("x")
            raise AssertionError("a read-only mount took a write")
        except OSError as error:
            assert error.errno == errno.EROFS
        wait_for(lambda: status(store)["indexed"] == 3, INGEST_TIMEOUT, "ingest")
        # threshold=2 lets every image through the cut; top_k=1 keeps the best one.
        assert len(os.listdir(mountpoint / "find" / "a photo of something")) == 1
    finally:
        semfs("unmount", mountpoint)
