"""Search through a real mount, with the real models, on real photos: copy images in,
wait for the queue to drain, list search/<query>/."""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_DIR
from tests.fs.conftest import (
    Mount,
    assert_clean_log,
    semfs,
    start_foreground,
    stop,
    wait_for,
)

INGEST_TIMEOUT = 180.0  # first use loads the models: seconds on a busy 2-core machine


def wait_indexed(mount: Mount, files: int) -> dict[str, object]:
    """Until `files` images are catalogued and none is waiting for ingest."""

    def drained() -> bool:
        status = mount.status()
        return status["files"] == files and status["queued"] == 0

    wait_for(drained, timeout=INGEST_TIMEOUT, what=f"{files} files ingested")
    return mount.status()


def results(mount: Mount, query: str | bytes) -> list[str]:
    """The listing of search/<query>/, in the order the filesystem gives it."""
    search = os.fsencode(mount.mountpoint / "search")
    return [os.fsdecode(name) for name in os.listdir(search + b"/" + os.fsencode(query))]


def ranked(*names: str) -> list[str]:
    """Result names as a view lists them, best first: each behind its rank."""
    return [f"{rank:02d} {name}" for rank, name in enumerate(names, start=1)]


def unranked(listed: list[str]) -> list[str]:
    """The names behind the ranks of a listing, in its order; each rank must be its place
    in the listing (two digits: a limit under 100)."""
    names = []
    for place, name in enumerate(listed, start=1):
        rank, _, behind = name.partition(" ")
        assert rank == f"{place:02d}" and behind, listed
        names.append(behind)
    return names


def catalog_rows(store: Path, sql: str, *parameters: object) -> list[tuple[object, ...]]:
    db = sqlite3.connect(f"file:{store / '.semfs' / 'catalog.sqlite3'}?mode=ro", uri=True)
    try:
        return db.execute(sql, parameters).fetchall()
    finally:
        db.close()


def expect_errno(code: int, function: object, *args: object) -> None:
    with pytest.raises(OSError) as caught:
        function(*args)  # type: ignore[operator]
    assert caught.value.errno == code, caught.value


def test_copied_photos_are_found_best_first_and_unrelated_ones_cut(
    mounted: Mount, photos: dict[str, Path]
) -> None:
    mnt = mounted.mountpoint
    subprocess.run(
        ["cp", str(photos["astronaut.png"]), str(photos["moon.png"]), str(mnt)], check=True
    )
    wait_indexed(mounted, files=5)

    assert results(mounted, "a cup of coffee") == ["01 coffee.png"]  # the others are cut
    assert results(mounted, "a cat")[0] == "01 cat.png"
    assert results(mounted, "a plate of spaghetti") == []  # nothing fits: nothing listed

    hit = mnt / "search" / "a cup of coffee" / "01 coffee.png"
    assert hit.read_bytes() == (mounted.store / "coffee.png").read_bytes()
    assert hit.stat().st_size == (mounted.store / "coffee.png").stat().st_size
    assert 0.0 < float(os.getxattr(hit, "user.semfs.score")) <= 1.0
    assert b"espresso" in os.getxattr(hit, "user.semfs.caption")
    assert os.getxattr(hit, "user.semfs.path") == b"coffee.png"

    # The same ranking from the command line: read from the mount while it is mounted,
    # computed in the command itself when asked for its own cut (here the same one).
    listed = results(mounted, "a cat")
    for extra in ([], ["--max-distance", "1.15"]):
        printed = json.loads(semfs("search", mounted.store, "a cat", "--json", *extra).stdout)
        assert [Path(entry["path"]).name for entry in printed] == unranked(listed)

    # Read-only there: the images themselves cannot be changed or removed through it.
    expect_errno(errno.EROFS, open, hit, "r+b")
    expect_errno(errno.EROFS, os.unlink, hit)
    expect_errno(errno.EROFS, os.rename, hit, mnt / "moved.png")
    expect_errno(errno.EROFS, shutil.copy, photos["moon.png"], hit.parent / "new.png")
    assert (mounted.store / "coffee.png").is_file()


def test_rename_keeps_the_caption_and_delete_drops_the_result(mounted: Mount) -> None:
    mnt, store = mounted.mountpoint, mounted.store
    wait_indexed(mounted, files=3)
    mounted.wait_status(texts_queued=0)  # the idle text pass may add words to a caption
    query = "SELECT f.id, v.seq, d.caption FROM files f JOIN vectors v ON v.file_id = f.id "
    query += "JOIN descriptions d ON d.file_id = f.id WHERE f.name = ?"
    (before,) = catalog_rows(store, query, b"coffee.png")

    os.rename(mnt / "coffee.png", mnt / "animals" / "espresso.png")
    wait_for(lambda: results(mounted, "a cup of coffee") == ["01 espresso.png"], what="renamed")
    (after,) = catalog_rows(store, query, b"espresso.png")
    assert after == before  # same record, vector and caption: not described again
    assert mounted.status()["queued"] == 0
    hit = mnt / "search" / "a cup of coffee" / "01 espresso.png"
    assert os.getxattr(hit, "user.semfs.path") == b"animals/espresso.png"

    os.unlink(mnt / "animals" / "espresso.png")
    wait_for(lambda: results(mounted, "a cup of coffee") == [], what="deleted hit gone")


def test_saved_queries_fill_as_images_arrive_and_survive_remounts(
    mounted: Mount, tmp_path: Path
) -> None:
    mnt = mounted.mountpoint
    search = mnt / "search"
    assert os.listdir(search / "a motorbike") == []  # looked up (not saved) first
    os.mkdir(search / "a motorbike")
    assert os.listdir(search) == ["a motorbike"]
    expect_errno(errno.EEXIST, os.mkdir, search / "a motorbike")
    subprocess.run(["mkdir", "-p", str(search / "a motorbike")], check=True)
    wait_indexed(mounted, files=3)
    assert results(mounted, "a motorbike") == []

    before = os.stat(search / "a motorbike").st_mtime_ns
    shutil.copy(SAMPLE_DIR / "motorcycle_left.png", mnt / "ride.png")
    wait_for(
        lambda: results(mounted, "a motorbike") == ["01 ride.png"],
        timeout=INGEST_TIMEOUT,
        what="the saved query to fill",
    )
    # Its mtime moves too, for file managers that poll it rather than list it again.
    wait_for(lambda: os.stat(search / "a motorbike").st_mtime_ns > before, what="mtime")

    mounted.unmount()
    again = start_foreground(mounted.store, mnt, tmp_path / "again.log")
    try:
        assert os.listdir(mnt / "search") == ["a motorbike"]
        wait_for(lambda: results(again, "a motorbike") == ["01 ride.png"], timeout=INGEST_TIMEOUT)
        os.rmdir(mnt / "search" / "a motorbike")
        assert os.listdir(mnt / "search") == []
        again.unmount()
    finally:
        stop(again)
    assert_clean_log(again)
    assert catalog_rows(mounted.store, "SELECT count(*) FROM saved_queries") == [(0,)]


def test_query_names_that_cannot_be_queries_get_clear_errors(mounted: Mount) -> None:
    search = mounted.mountpoint / "search"
    expect_errno(errno.ENAMETOOLONG, os.listdir, search / ("snow " * 60))
    expect_errno(errno.ENAMETOOLONG, os.mkdir, search / ("snow " * 60))
    expect_errno(errno.EINVAL, os.listdir, os.fsencode(search) + b"/caf\xe9")  # not UTF-8
    expect_errno(errno.EINVAL, os.listdir, search / "?!...")
    expect_errno(errno.EINVAL, os.mkdir, search / "---")
    for probe in (".hidden", ".directory", "desktop.ini", "folder.jpg", ".xdg-volume-info"):
        assert not (search / probe).exists()
    expect_errno(errno.EROFS, (search / "a cat" / "new.txt").write_text, "x")
    expect_errno(errno.EEXIST, os.mkdir, mounted.mountpoint / "search")


FILE_MANAGER_PROBES = (
    ".hidden", ".directory", "desktop.ini", "Desktop.ini", "folder.jpg", ".xdg-volume-info",
    "Thumbs.db", ".DS_Store", ".thumbnails", ".sh_thumbnails", "autorun.inf", ".Trash-0",
)  # fmt: skip


def test_file_manager_probes_are_absent_and_cost_no_search(mounted: Mount) -> None:
    search = mounted.mountpoint / "search"
    wait_indexed(mounted, 3)
    assert os.listdir(search / "a cup of coffee") == ["01 coffee.png"]
    searches = mounted.log_text().count(" search '")
    for folder in (search, search / "a cup of coffee"):
        for probe in FILE_MANAGER_PROBES:
            expect_errno(errno.ENOENT, os.stat, folder / probe)
    log = mounted.log_text()
    assert log.count(" search '") == searches  # nothing searched again, no probe searched
    assert not any(f" search '{probe}'" in log for probe in FILE_MANAGER_PROBES)


def test_bad_images_are_recorded_with_reasons_and_skipped(
    mounted: Mount, photos: dict[str, Path]
) -> None:
    mnt = mounted.mountpoint
    (mnt / "truncated.jpg").write_bytes(photos["rocket.jpg"].read_bytes()[:2000])
    (mnt / "fake.jpg").write_text("this is a shopping list, not a photo\n")
    (mnt / "empty.png").write_bytes(b"")
    subprocess.run(["cp", str(photos["moon.png"]), str(mnt / "good.png")], check=True)
    status = wait_indexed(mounted, files=7)
    assert status["failed"] == 3 and status["indexed"] == 4
    reasons = {entry["path"]: entry["reason"] for entry in status["failures"]}  # type: ignore[union-attr]
    assert "truncated" in reasons["truncated.jpg"]
    assert "not an image" in reasons["fake.jpg"]
    assert "empty" in reasons["empty.png"]
    assert all(name not in unranked(results(mounted, "a photo")) for name in reasons)
    # `semfs index` on a mounted store follows the daemon and ends with the same summary.
    summary = semfs("index", mounted.store, "--quiet").stdout
    assert "indexed 4, failed 3" in summary and "failed: fake.jpg: not an image" in summary


def test_a_caption_set_by_the_user_wins(mounted: Mount) -> None:
    mnt = mounted.mountpoint
    wait_indexed(mounted, files=3)
    os.setxattr(mnt / "rocket.jpg", "user.semfs.caption", b"a red bicycle leaning on a wall")
    wait_for(
        lambda: results(mounted, "a bicycle")[:1] == ["01 rocket.jpg"],
        timeout=INGEST_TIMEOUT,
        what="the user caption to be indexed",
    )
    hit = mnt / "search" / "a bicycle" / "01 rocket.jpg"
    assert os.getxattr(hit, "user.semfs.caption") == b"a red bicycle leaning on a wall"


def test_results_are_named_by_rank_so_a_listing_sorted_by_name_comes_best_first(
    mounted: Mount, photos: dict[str, Path]
) -> None:
    mnt = mounted.mountpoint
    subprocess.run(
        ["cp", str(photos["astronaut.png"]), str(photos["moon.png"]), str(mnt)], check=True
    )
    wait_indexed(mounted, files=5)
    folder = mnt / "search" / "a cup of coffee @t=2"  # every image, within the cut

    def ls(*options: str) -> list[str]:
        done = subprocess.run(["ls", *options, str(folder)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    by_name, as_read = ls(), ls("-U")  # ls sorts by name; -U: the order readdir gives
    assert by_name == as_read
    paths = [os.fsdecode(os.getxattr(folder / name, "user.semfs.path")) for name in by_name]
    assert sorted(paths) == ["animals/cat.png", "astronaut.png", "coffee.png", "moon.png",
                             "rocket.jpg"]  # fmt: skip
    assert by_name == ranked(*(Path(path).name for path in paths))
    assert unranked(by_name)[0] == "coffee.png"  # best first; by its plain name, third
    scores = [float(os.getxattr(folder / name, "user.semfs.score")) for name in by_name]
    assert scores == sorted(scores, reverse=True)
    # Listed again, nothing changed: the same names for the same inodes.
    inodes = [(folder / name).stat().st_ino for name in by_name]
    assert ls() == by_name and [(folder / name).stat().st_ino for name in by_name] == inodes

    # As wide as the folder's limit: its own @k, else top_k (50).
    wide = os.listdir(mnt / "search" / "a cup of coffee @t=2 @k=100")
    assert wide == [f"0{name}" for name in by_name]
    assert os.listdir(mnt / "search" / "a cup of coffee @t=2 @k=2") == by_name[:2]


def test_an_open_result_reads_on_when_its_rank_changes(mounted: Mount) -> None:
    """The entry is one inode per (query, image): renamed by a new rank, it is the same
    file, so what holds it open reads on; its old name is gone, its new one listed."""
    mnt = mounted.mountpoint
    wait_indexed(mounted, files=3)
    folder = mnt / "search" / "a cup of coffee"
    assert os.listdir(folder) == ["01 coffee.png"]
    inode = (folder / "01 coffee.png").stat().st_ino
    with open(folder / "01 coffee.png", "rb") as image:
        start = image.read(1000)
        # A better match arrives: the rocket, captioned as exactly what is asked for.
        os.setxattr(mnt / "rocket.jpg", "user.semfs.caption", b"a cup of coffee")
        wait_for(lambda: os.listdir(folder) == ["01 rocket.jpg", "02 coffee.png"],
                 INGEST_TIMEOUT, "the rocket to rank first")  # fmt: skip
        assert start + image.read() == (mounted.store / "coffee.png").read_bytes()
        assert os.fstat(image.fileno()).st_ino == inode
    assert (folder / "02 coffee.png").stat().st_ino == inode
    assert os.getxattr(folder / "02 coffee.png", "user.semfs.path") == b"coffee.png"
    assert os.getxattr(folder / "01 rocket.jpg", "user.semfs.path") == b"rocket.jpg"
    assert (folder / "01 rocket.jpg").stat().st_ino != inode
    expect_errno(errno.ENOENT, os.stat, folder / "01 coffee.png")


def test_plain_result_names_on_request(store: Path, tmp_path: Path) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    refused = semfs("mount", store, mountpoint, "-o", "result_names=sorted", check=False)
    assert refused.returncode == 1, refused
    assert "result_names = 'sorted': it is one of ranked, plain" in refused.stderr
    assert not os.path.ismount(mountpoint)
    semfs("mount", store, mountpoint, "-o", "result_names=plain")
    try:
        mount = Mount(store, mountpoint, None, store / ".semfs" / "mount.log")
        wait_indexed(mount, files=3)
        assert os.listdir(mountpoint / "search" / "a cup of coffee") == ["coffee.png"]
        listed = os.listdir(mountpoint / "search" / "a cup of coffee @t=2")
        assert listed[0] == "coffee.png" and sorted(listed) == ["cat.png", "coffee.png",
                                                                "rocket.jpg"]  # fmt: skip
        mount.wait_status(image_features=3, image_features_queued=0)
        os.mkdir(mountpoint / "similar" / "coffee.png @t=2")
        assert sorted(os.listdir(mountpoint / "similar" / "coffee.png @t=2")) == [
            "cat.png", "rocket.jpg"
        ]  # fmt: skip
    finally:
        semfs("unmount", mountpoint)


def test_search_settings_from_the_command_line_and_config_file(store: Path, tmp_path: Path) -> None:
    (store / ".semfs").mkdir()
    (store / ".semfs" / "config.toml").write_text('search_dir_name = "find"\ntop_k = 1\n')
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    semfs("mount", store, mountpoint, "--max-distance", "2")  # the daemon gets the flag
    try:
        assert "find" in os.listdir(mountpoint) and "search" not in os.listdir(mountpoint)
        mount = Mount(store, mountpoint, None, store / ".semfs" / "mount.log")
        wait_indexed(mount, files=3)
        # Every image is within distance 2 of any query; top_k 1 keeps the best one.
        assert os.listdir(mountpoint / "find" / "a cup of coffee") == ["01 coffee.png"]
        # With the calibrated cut nothing fits this (see the first test); with 2, one does.
        assert len(os.listdir(mountpoint / "find" / "a plate of spaghetti")) == 1
    finally:
        semfs("unmount", mountpoint)


def test_a_model_name_that_names_nothing_is_refused_before_mounting(
    store: Path, tmp_path: Path
) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    result = semfs("mount", store, mountpoint, "--embedder", "glove", check=False)
    assert result.returncode == 1 and "unknown embedder 'glove'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not os.path.ismount(mountpoint)
