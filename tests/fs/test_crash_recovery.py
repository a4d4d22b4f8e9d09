"""`kill -9` of the daemon at the worst moments, then a remount: nothing is lost.

Each crash is timed by watching for the moment itself, not by sleeping: (a) while `cp`
copies many images in, (b) while ingest is half done, (c) while an index build is half
written (its temporary file exists), (d) while a catalog transaction is open (the
daemon, stopped, holds SQLite's write lock). After the remount every image of the store
is in the catalog, indexed exactly once (or failed, with a reason), the index agrees with
the catalog (`semfs check` finds nothing), and saved searches are still there.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.conftest import SAMPLE_DIR
from tests.fs.conftest import Mount, semfs, wait_for
from tests.fs.test_catalog_mount import assert_catalog_matches_store
from tests.fs.test_search import INGEST_TIMEOUT, catalog_rows, results, unranked

SAVED = "a photo of a rocket"


def make_images(directory: Path, count: int, prefix: str = "crop") -> None:
    """Distinct small photos: crops of a real one at different places."""
    directory.mkdir(parents=True, exist_ok=True)
    source = Image.open(SAMPLE_DIR / "astronaut.png").convert("RGB")
    for i in range(count):
        source.crop((2 * i, i, 2 * i + 160, i + 160)).save(directory / f"{prefix}{i:03d}.jpg")


def mount_daemon(store: Path, mountpoint: Path) -> tuple[Mount, int]:
    """`semfs mount`, as a user runs it; after a crash it first cleans up the dead mount."""
    with contextlib.suppress(FileExistsError, OSError):  # ENOTCONN: a dead mount is there
        mountpoint.mkdir()
    semfs("mount", store, mountpoint)
    pid = int((store / ".semfs" / "mount.lock").read_text().split()[0])
    return Mount(store, mountpoint, None, store / ".semfs" / "mount.log"), pid


def kill_when(
    pid: int, moment: Callable[[], bool], what: str, timeout: float = INGEST_TIMEOUT
) -> None:
    deadline = time.monotonic() + timeout
    while not moment():
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.001)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), what="the daemon gone")


def check(store: Path) -> tuple[int, dict[str, Any]]:
    result = semfs("check", store, "--json", check=False)
    return result.returncode, json.loads(result.stdout)


def images_in(store: Path) -> int:
    return sum(1 for path in store.rglob("*.jpg") if ".semfs" not in path.parts) + sum(
        1 for path in store.rglob("*.png") if ".semfs" not in path.parts
    )


def recover_and_verify(store: Path, mountpoint: Path) -> dict[str, Any]:
    """Remount after the crash; once ingest has drained, everything must agree."""
    mount, _ = mount_daemon(store, mountpoint)  # cleans up the dead mount first
    try:
        total = images_in(store)

        def drained() -> bool:
            status = mount.status()
            return status["files"] == total and status["queued"] == 0

        wait_for(drained, timeout=INGEST_TIMEOUT, what=f"{total} images ingested")
        status = mount.status()
        assert status["indexed"] + status["failed"] == total
        vectors = [row[0] for row in catalog_rows(store, "SELECT file_id FROM vectors")]
        indexed = catalog_rows(store, "SELECT id FROM files WHERE state = 'indexed'")
        assert sorted(vectors) == sorted(row[0] for row in indexed)  # each exactly once
        assert SAVED in os.listdir(mountpoint / "search")  # the saved search survived
        listed = unranked(results(mount, SAVED))
        assert listed and len(listed) == len(set(listed))  # each image once, ranked in order
    finally:
        semfs("unmount", mountpoint)
    assert_catalog_matches_store(store)
    code, report = check(store)
    assert code == 0 and report["consistent"], report
    return status


def started_store(store: Path, mountpoint: Path, images: int) -> tuple[Mount, int]:
    """A mounted store with a saved search and `images` crops waiting for ingest."""
    make_images(store, images)
    mount, pid = mount_daemon(store, mountpoint)
    os.mkdir(mountpoint / "search" / SAVED)
    return mount, pid


def test_a_kill_mid_copy(store: Path, tmp_path: Path) -> None:
    source = tmp_path / "camera"
    make_images(source, 150)
    mountpoint = tmp_path / "mnt"
    _, pid = mount_daemon(store, mountpoint)
    os.mkdir(mountpoint / "search" / SAVED)
    copying = subprocess.Popen(
        ["cp", "-r", str(source), str(mountpoint / "camera")], stderr=subprocess.PIPE
    )

    def arrived() -> bool:
        return (store / "camera").exists() and len(os.listdir(store / "camera")) >= 20

    kill_when(pid, arrived, "the copy under way", timeout=60)
    _, errors = copying.communicate(timeout=60)
    assert copying.returncode != 0 and b"Transport endpoint is not connected" in errors
    copied = len(os.listdir(store / "camera"))
    assert 20 <= copied < 150
    status = recover_and_verify(store, mountpoint)
    assert status["files"] == 3 + copied


def test_b_kill_mid_ingest(store: Path, tmp_path: Path) -> None:
    mountpoint = tmp_path / "mnt"
    _, pid = started_store(store, mountpoint, images=120)

    def half_done() -> bool:
        try:
            ((indexed, queued),) = catalog_rows(
                store,
                "SELECT (SELECT count(*) FROM files WHERE state = 'indexed'), "
                "(SELECT count(*) FROM ingest_queue)",
            )
        except sqlite3.OperationalError:
            return False
        return int(indexed) > 10 and int(queued) > 10  # type: ignore[call-overload]

    kill_when(pid, half_done, "ingest half done")
    status = recover_and_verify(store, mountpoint)
    assert status["indexed"] == 123


def test_c_kill_mid_index_build(store: Path, tmp_path: Path) -> None:
    (store / ".semfs").mkdir()
    # Builds often, and slowly enough (many trees) to be caught while half written.
    (store / ".semfs" / "config.toml").write_text("rebuild_threshold = 10\nindex_trees = 400\n")
    mountpoint = tmp_path / "mnt"
    _, pid = started_store(store, mountpoint, images=120)
    index = store / ".semfs" / "index"
    kill_when(pid, lambda: any(index.glob("*.tmp")), "an index build half written")
    assert any(index.glob("*.tmp"))  # the crash left it half written
    code, report = check(store)
    assert code == 4 and "half-written-index" in {f["kind"] for f in report["findings"]}
    recover_and_verify(store, mountpoint)
    assert not any(index.glob("*.tmp"))


def test_d_kill_mid_catalog_transaction(store: Path, tmp_path: Path) -> None:
    mountpoint = tmp_path / "mnt"
    _, pid = started_store(store, mountpoint, images=60)
    stop_renaming = threading.Event()

    def rename_back_and_forth() -> None:  # each rename of the folder moves 60 records
        names = [store.name for store in (mountpoint / "a", mountpoint / "b")]
        try:
            os.mkdir(mountpoint / names[0])
            for path in sorted(store.glob("crop*.jpg"))[:60]:
                os.rename(mountpoint / path.name, mountpoint / names[0] / path.name)
            while not stop_renaming.is_set():
                os.rename(mountpoint / names[0], mountpoint / names[1])
                names.reverse()
        except OSError as error:  # the kill may come at any of them, on a slow machine
            assert error.errno in (errno.ENOTCONN, errno.ECONNABORTED)

    renamer = threading.Thread(target=rename_back_and_forth)
    renamer.start()
    catalog = store / ".semfs" / "catalog.sqlite3"

    def in_a_transaction() -> bool:
        """Stop the daemon and see whether it holds the catalog's write lock."""
        os.kill(pid, signal.SIGSTOP)
        probe = sqlite3.connect(catalog, timeout=0)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
        except sqlite3.OperationalError as error:
            assert "locked" in str(error)
            return True  # killed while stopped: mid-transaction
        finally:
            probe.close()
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.003)
        return False

    try:
        kill_when(pid, in_a_transaction, "a catalog transaction open")
    finally:
        stop_renaming.set()
        renamer.join(timeout=60)
    assert not renamer.is_alive()
    status = recover_and_verify(store, mountpoint)
    assert status["files"] == 63


def fill_up(path: Path) -> None:
    """Write `path` until the disk is full (ENOSPC)."""
    with open(path, "wb") as filler, pytest.raises(OSError) as full:
        while True:
            filler.write(bytes(1 << 20))
            filler.flush()
    assert full.value.errno == errno.ENOSPC


def test_a_full_disk_gives_enospc_and_ingest_resumes_when_space_returns(
    small_disk: Path, tmp_path: Path
) -> None:
    store, mountpoint = small_disk / "store", tmp_path / "mnt"
    make_images(store, 2)
    shutil.copy(SAMPLE_DIR / "rocket.jpg", store / "rocket.jpg")
    mount, _ = mount_daemon(store, mountpoint)
    try:
        os.mkdir(mountpoint / "search" / SAVED)
        make_images(tmp_path / "more", 8, prefix="more")
        for path in sorted((tmp_path / "more").iterdir()):
            shutil.copy(path, mountpoint / path.name)
        # The disk fills up while those are still being recorded and ingested.
        fill_up(mountpoint / "filler.bin")
        with pytest.raises(OSError) as refused:
            shutil.copy(SAMPLE_DIR / "coffee.png", mountpoint / "late.png")
        assert refused.value.errno == errno.ENOSPC
        os.unlink(mountpoint / "late.png")  # what the failed copy left
        time.sleep(3)  # the daemon meets the full disk (catalog writes refused)
        assert mount.status()["files"] >= 3  # and still answers

        os.unlink(mountpoint / "filler.bin")  # space returns
        wait_for(
            lambda: (mount.status()["files"], mount.status()["queued"]) == (11, 0),
            timeout=INGEST_TIMEOUT,
            what="ingest resumed after space returned",
        )
        assert mount.status()["indexed"] == 11
        assert results(mount, SAVED)
    finally:
        semfs("unmount", mountpoint)
    code, report = check(store)
    assert code == 0 and report["consistent"], report
    log = (store / ".semfs" / "mount.log").read_text()
    assert "Traceback" not in log, log
