"""The catalog follows what happens through the mount and what happened while unmounted."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from semfs.catalog.database import Catalog, FileState
from semfs.store.hashing import content_hash
from tests.fs.conftest import (
    Daemon,
    Mount,
    assert_clean_log,
    is_mounted,
    semfs,
    start_foreground,
    stop,
    wait_for,
)


def catalog_of(store: Path) -> dict[str, tuple[int, int, str | None]]:
    """{path: (id, size, content hash)} straight from the catalog file."""
    catalog = Catalog.open(store / ".semfs" / "catalog.sqlite3")
    try:
        return {
            os.fsdecode(r.path): (r.id, r.size, r.content_hash) for r in catalog.files.all_files()
        }
    finally:
        catalog.close()


def images_in(store: Path) -> dict[str, tuple[int, str]]:
    """{path: (size, content hash)} of the image files actually in the store."""
    found = {}
    for path in store.rglob("*"):
        relative = path.relative_to(store)
        if relative.parts[0] == ".semfs" or not path.is_file() or path.is_symlink():
            continue
        if path.suffix.lower() in {".jpg", ".png"}:
            found[str(relative)] = (path.stat().st_size, content_hash(path))
    return found


def assert_catalog_matches_store(store: Path) -> None:
    recorded = {path: (size, digest) for path, (_, size, digest) in catalog_of(store).items()}
    assert recorded == images_in(store)


def test_mount_catalogs_existing_images(mounted: Mount) -> None:
    status = mounted.status()
    assert status["schema_version"] >= 1
    # Queued, or already indexed: ingest is fast enough to be done by now.
    assert (status["files"], status["queued"] + status["indexed"], status["failed"]) == (3, 3, 0)
    assert_catalog_matches_store(mounted.store)


def test_writes_through_the_mount_enqueue_images(mounted: Mount, photos: dict[str, Path]) -> None:
    mnt = mounted.mountpoint
    shutil.copy(photos["astronaut.png"], mnt / "astronaut.png")
    shutil.copy(photos["moon.png"], mnt / "animals" / "MOON.PNG")
    (mnt / "readme.md").write_text("not an image")
    mounted.wait_status(files=5, indexed=5)
    assert_catalog_matches_store(mounted.store)
    # Rewriting an image with new content re-enqueues it; rewriting it unchanged does not.
    before = catalog_of(mounted.store)["astronaut.png"]
    shutil.copy(photos["moon.png"], mnt / "astronaut.png")
    wait_for(lambda: catalog_of(mounted.store)["astronaut.png"][2] != before[2])
    assert catalog_of(mounted.store)["astronaut.png"][0] == before[0]  # same record


def test_truncating_open_with_nothing_written_is_recorded(mounted: Mount) -> None:
    with open(mounted.mountpoint / "rocket.jpg", "wb"):
        pass  # O_TRUNC, no write
    wait_for(lambda: catalog_of(mounted.store)["rocket.jpg"][1] == 0, what="truncation")
    assert_catalog_matches_store(mounted.store)


def test_renames_keep_records_and_removals_drop_them(mounted: Mount) -> None:
    mnt, store = mounted.mountpoint, mounted.store
    ids = {path: record[0] for path, record in catalog_of(store).items()}
    os.rename(mnt / "rocket.jpg", mnt / "animals" / "launch.jpg")
    os.rename(mnt / "animals", mnt / "zoo")
    wait_for(lambda: "zoo/launch.jpg" in catalog_of(store), what="rename recorded")
    after = catalog_of(store)
    assert after["zoo/launch.jpg"][0] == ids["rocket.jpg"]
    assert after["zoo/cat.png"][0] == ids["animals/cat.png"]
    os.rename(mnt / "zoo" / "cat.png", mnt / "zoo" / "cat.txt")  # no longer an image name
    subprocess.run(["rm", "-r", str(mnt / "zoo")], check=True)
    os.unlink(mnt / "coffee.png")
    mounted.wait_status(files=0, queued=0)


def test_temporary_name_renamed_to_an_image_is_catalogued(
    mounted: Mount, photos: dict[str, Path]
) -> None:
    """rsync and many editors write `.name.tmp`, then rename it into place."""
    mnt = mounted.mountpoint
    shutil.copy(photos["moon.png"], mnt / ".moon.png.tmp")
    os.rename(mnt / ".moon.png.tmp", mnt / "moon.png")
    wait_for(lambda: "moon.png" in catalog_of(mounted.store), what="moon.png catalogued")
    assert_catalog_matches_store(mounted.store)


def vectors_after(store: Path, seq: int) -> set[str]:
    """Names of the files whose vector was written after `seq` (seq grows with each)."""
    uri = f"file:{store / '.semfs' / 'catalog.sqlite3'}?mode=ro"
    with sqlite3.connect(uri, uri=True) as db:
        rows = db.execute(
            "SELECT f.name FROM files f JOIN vectors v ON v.file_id = f.id WHERE v.seq > ?",
            (seq,),
        )
        return {os.fsdecode(name) for (name,) in rows}


def last_vector_seq(store: Path) -> int:
    uri = f"file:{store / '.semfs' / 'catalog.sqlite3'}?mode=ro"
    with sqlite3.connect(uri, uri=True) as db:
        return int(db.execute("SELECT coalesce(max(seq), 0) FROM vectors").fetchone()[0])


def test_reconcile_finds_changes_made_while_unmounted(
    mounted: Mount, photos: dict[str, Path], tmp_path: Path
) -> None:
    store = mounted.store
    mounted.unmount()
    stop(mounted)
    # Pretend the ingest stages have run, so we can see what gets queued again.
    catalog = Catalog.open(store / ".semfs" / "catalog.sqlite3")
    for record in catalog.queue.queued(100):
        catalog.queue.finish(record.id, FileState.INDEXED)
    ids = {os.fsdecode(r.path): r.id for r in catalog.files.all_files()}
    catalog.close()
    seq_before = last_vector_seq(store)

    shutil.copy(photos["astronaut.png"], store / "new.png")  # added
    shutil.copy(photos["moon.png"], store / "coffee.png")  # changed in place
    os.rename(store / "rocket.jpg", store / "animals" / "rocket-moved.jpg")  # renamed
    os.rename(store / "animals", store / "pets")  # directory renamed
    (store / "stray.jpg").write_bytes(b"")  # an empty "image" is still a file to track

    again = start_foreground(store, mounted.mountpoint, tmp_path / "daemon2.log")
    try:
        status = again.wait_reconciled()
        assert "2 added, 1 changed, 2 moved, 0 removed" in status["last_reconcile"]["summary"]
        assert_catalog_matches_store(store)
        catalog = Catalog.open(store / ".semfs" / "catalog.sqlite3")
        records = {os.fsdecode(r.path): r for r in catalog.files.all_files()}
        catalog.close()
        # Moved files keep their records and derived state: nothing to redo.
        assert records["pets/rocket-moved.jpg"].id == ids["rocket.jpg"]
        assert records["pets/cat.png"].id == ids["animals/cat.png"]
        assert records["pets/rocket-moved.jpg"].state is FileState.INDEXED
        # Added and changed files are ingested (again); the moved ones are not.
        again.wait_status(indexed=4, failed=1)  # stray.jpg is empty: failed
        assert vectors_after(store, seq_before) == {"new.png", "coffee.png"}
        # Removal while unmounted.
        again.unmount()
        stop(again)
        os.unlink(store / "new.png")
        third = start_foreground(store, mounted.mountpoint, tmp_path / "daemon3.log")
        try:
            status = third.wait_reconciled()
            assert "1 removed" in status["last_reconcile"]["summary"]
            assert_catalog_matches_store(store)
        finally:
            stop(third)
        assert_clean_log(third)
    finally:
        stop(again)
    assert_clean_log(again)


def test_daemon_mode_status_and_unmount(store: Path, tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    result = semfs("mount", store, mnt)
    assert "mounted" in result.stdout
    try:
        assert is_mounted(mnt)
        listed = ["animals", "coffee.png", "notes.txt", "places", "rocket.jpg", "search",
                  "similar", "tags"]  # fmt: skip
        assert sorted(os.listdir(mnt)) == listed
        status = semfs("status", store).stdout
        assert f"at {mnt}" in status and "images:" in status
        again = semfs("mount", store, mnt, check=False)
        assert again.returncode == 1 and "already mounted" in again.stderr
        assert "Traceback" not in again.stderr
    finally:
        semfs("unmount", mnt)
    assert not is_mounted(mnt)
    assert "mounted:    no" in semfs("status", store).stdout
    log = (store / ".semfs" / "mount.log").read_text()
    assert "Traceback" not in log and "unmounted" in log


def test_a_mountpoint_with_files_is_refused_unless_nonempty(store: Path, tmp_path: Path) -> None:
    """Mounting would hide the files there (they look lost): refused with the way out,
    and nothing is mounted; with -o nonempty it mounts, and they are back after."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    (mnt / "mine.txt").write_text("mine\n")
    refused = semfs("mount", store, mnt, check=False)
    try:
        assert not is_mounted(mnt) and "mounted:    no" in semfs("status", store).stdout
    finally:
        if is_mounted(mnt):
            semfs("unmount", mnt)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert f"mountpoint {mnt} is not empty ('mine.txt')" in refused.stderr
    assert "-o nonempty" in refused.stderr

    semfs("mount", store, mnt, "-o", "nonempty")
    try:
        assert is_mounted(mnt) and "rocket.jpg" in os.listdir(mnt)
        assert "mine.txt" not in os.listdir(mnt)  # hidden while mounted
    finally:
        semfs("unmount", mnt)
    assert (mnt / "mine.txt").read_text() == "mine\n"


def test_stale_mount_after_kill_9_is_explained_and_recovered(
    daemon_mount: Daemon, photos: dict[str, Path]
) -> None:
    store, mnt = daemon_mount.store, daemon_mount.mountpoint
    pid = daemon_mount.pid
    shutil.copy(photos["moon.png"], mnt / "moon.png")  # written just before the crash
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), what="daemon gone")
    with pytest.raises(OSError) as caught:
        os.listdir(mnt)
    assert caught.value.errno == errno.ENOTCONN

    result = semfs("mount", store, mnt)
    assert "dead semfs mount" in result.stderr and "Traceback" not in result.stderr
    assert (mnt / "moon.png").read_bytes() == photos["moon.png"].read_bytes()
    wait_for(lambda: "moon.png" in catalog_of(store), what="moon.png after restart")
    assert_catalog_matches_store(store)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["mount", "{store}", "{tmp}/missing"], "does not exist"),
        (["mount", "{tmp}/no-store", "{tmp}"], "is not a directory"),
        (["mount", "{store}", "{store}/animals"], "must not contain each other"),
        (["unmount", "{tmp}"], "is not mounted"),
    ],
)
def test_cli_errors_are_explained(
    store: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    argv = [a.format(store=store, tmp=tmp_path) for a in args]
    result = semfs(*argv, check=False)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr


def test_status_of_a_store_never_mounted(store: Path) -> None:
    status = semfs("status", store).stdout
    assert "images:     0" in status and "not been mounted" in status
    assert not (store / ".semfs").exists()  # status creates nothing


WRITER = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
print("started", flush=True)
block = b"x" * (1 << 20)
try:
    for _ in range(100_000):
        os.write(fd, block)
except OSError as error:
    print(f"errno {error.errno}", flush=True)
    sys.exit(3)
"""


def test_crash_mid_write_loses_nothing_written_and_recovers(
    daemon_mount: Daemon, photos: dict[str, Path]
) -> None:
    store, mnt = daemon_mount.store, daemon_mount.mountpoint
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(mnt / "big.jpg")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None and writer.stdout.readline() == "started\n"
    wait_for(lambda: (store / "big.jpg").stat().st_size > 8 << 20, what="write under way")
    os.kill(daemon_mount.pid, signal.SIGKILL)
    output, _ = writer.communicate(timeout=30)
    # A clear error: ECONNABORTED for the write in flight, ENOTCONN for later ones.
    assert writer.returncode == 3
    assert output.strip() in (f"errno {errno.ENOTCONN}", f"errno {errno.ECONNABORTED}")
    partial = (store / "big.jpg").stat().st_size
    assert partial > 8 << 20  # what reached the store before the crash is still there

    semfs("mount", store, mnt)  # cleans up the dead mount, reconciles
    wait_for(lambda: "big.jpg" in catalog_of(store), what="partial file catalogued")
    assert catalog_of(store)["big.jpg"][1] == partial
    shutil.copy(photos["coffee.png"], mnt / "big.jpg")  # the user copies it again
    wait_for(
        lambda: catalog_of(store)["big.jpg"][1] == photos["coffee.png"].stat().st_size,
        what="rewrite catalogued",
    )
    assert_catalog_matches_store(store)
