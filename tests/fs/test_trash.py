"""A file manager's trash in a real mount: `gio trash` (what PCManFM's Delete does) moves a
photo or a folder to STORE/.Trash-0/, by the freedesktop.org trash spec, and the catalog
forgets it there: never searched, listed or counted, not at the mount's reconcile either.
Restored, it is catalogued again; a view's result cannot be trashed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fs.conftest import Mount, checked_mount, semfs, wait_for
from tests.fs.test_search import INGEST_TIMEOUT, catalog_rows, wait_indexed

if shutil.which("gio") is None:
    pytest.skip("needs gio (libglib2.0-bin, scripts/install.sh)", allow_module_level=True)

COFFEE = "a cup of coffee"


def gio_trash(mount: Mount, *paths: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["gio", "trash", *paths], cwd=mount.mountpoint, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip


def listing(mount: Mount, query: str) -> list[str]:
    return os.listdir(mount.mountpoint / "search" / query)


def shows_coffee(mount: Mount) -> bool:
    return any(name.endswith("coffee.png") for name in listing(mount, COFFEE))


def trash_records(store: Path) -> list[tuple[object, ...]]:
    return catalog_rows(store, "SELECT dir, name FROM files WHERE dir LIKE '.Trash%'")


def test_gio_trash_moves_to_the_stores_trash_which_is_never_catalogued(
    store: Path, tmp_path: Path
) -> None:
    # Left there unmounted, e.g. by an older semfs: never catalogued by the reconcile.
    for folder in (".Trash-0", ".Trash-0/files", ".Trash-0/info"):
        (store / folder).mkdir(mode=0o700)  # as gio makes them
    shutil.copy(store / "rocket.jpg", store / ".Trash-0" / "files" / "old rocket.jpg")
    trash = store / ".Trash-0"
    coffee = (store / "coffee.png").read_bytes()
    with checked_mount(store, tmp_path) as mount:
        mnt = mount.mountpoint
        assert mount.status()["files"] == 3  # reconciled: not the one in the trash
        wait_indexed(mount, 3)
        assert trash_records(store) == []
        wait_for(lambda: shows_coffee(mount), INGEST_TIMEOUT, "coffee in search")

        # A view's result is no file of its own to trash: refused, nothing moved.
        result = next(name for name in listing(mount, COFFEE) if name.endswith("coffee.png"))
        done = gio_trash(mount, f"search/{COFFEE}/{result}")
        assert done.returncode != 0 and "Read-only file system" in done.stderr, done
        assert (store / "coffee.png").read_bytes() == coffee
        assert os.listdir(trash / "files") == ["old rocket.jpg"]
        assert os.listdir(trash / "info") == []

        done = gio_trash(mount, "coffee.png")
        assert done.returncode == 0, done.stderr
        assert not (mnt / "coffee.png").exists() and not (store / "coffee.png").exists()
        assert (trash / "files" / "coffee.png").read_bytes() == coffee
        info = (trash / "info" / "coffee.png.trashinfo").read_text()
        assert "[Trash Info]" in info and "Path=coffee.png" in info, info
        mount.wait_status(files=2, queued=0)
        assert trash_records(store) == []
        wait_for(lambda: not shows_coffee(mount), 10, "coffee gone from search")

        # A folder goes the same way, and its images with it.
        done = gio_trash(mount, "animals")
        assert done.returncode == 0, done.stderr
        assert (trash / "files" / "animals" / "cat.png").is_file()
        mount.wait_status(files=1)
        assert trash_records(store) == []

        assert sorted(os.listdir(trash / "files")) == ["animals", "coffee.png", "old rocket.jpg"]
        assert sorted(os.listdir(trash / "info")) == ["animals.trashinfo", "coffee.png.trashinfo"]

        # Restored as a file manager's trash does it (gio's own --restore needs gvfs):
        # moved back to the trashinfo's Path, the trashinfo deleted. Catalogued again.
        os.rename(mnt / ".Trash-0" / "files" / "coffee.png", mnt / "coffee.png")
        os.unlink(mnt / ".Trash-0" / "info" / "coffee.png.trashinfo")
        os.rename(mnt / ".Trash-0" / "files" / "animals", mnt / "animals")
        os.unlink(mnt / ".Trash-0" / "info" / "animals.trashinfo")
        mount.wait_status(files=3)
        wait_indexed(mount, 3)
        wait_for(lambda: shows_coffee(mount), INGEST_TIMEOUT, "coffee back in search")

        # Trashed again, then the trash emptied (what "Empty Trash" does).
        assert gio_trash(mount, "coffee.png").returncode == 0
        mount.wait_status(files=2)
        empty_trash(mnt / ".Trash-0")
        assert os.listdir(trash / "files") == [] and os.listdir(trash / "info") == []
        mount.unmount()

    # A remount's reconcile leaves the trash out too, and `semfs check` agrees.
    shutil.copy(store / "rocket.jpg", trash / "files" / "rocket again.jpg")
    with checked_mount(store, tmp_path) as mount:
        assert mount.wait_reconciled()["files"] == 2
        assert trash_records(store) == []
        mount.unmount()
    assert semfs("check", store, check=False).returncode == 0


def empty_trash(trash: Path) -> None:
    """What a file manager's "Empty Trash" does: all of files/ and info/ deleted."""
    for entry in [*(trash / "files").iterdir(), *(trash / "info").iterdir()]:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
