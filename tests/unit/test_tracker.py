"""The change tracker replays filesystem changes on the catalog in order, even when the
store has moved on by the time a change is applied (the filesystem reports each change
synchronously, the tracker applies it later)."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

import semfs.catalog.tracker as tracker_module
from semfs.catalog.database import Catalog
from semfs.catalog.tracker import ChangeTracker, Opener
from semfs.config import Settings


def reader(path: Path) -> Opener:
    """What the filesystem hands the tracker: opens the file's content read-only."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    return lambda: fd


async def run_tracker(store: Path, report: Callable[[ChangeTracker], None]) -> Catalog:
    """Reconcile `store`, let `report` make and report changes, apply them, return the
    catalog. Every change is reported before the tracker applies any of them."""
    settings = Settings.load(store)
    catalog = Catalog.open(settings.catalog_path)
    tracker = ChangeTracker(settings, catalog)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(tracker.run)
        await tracker.reconciled.wait()
        report(tracker)
        tracker.close()
    return catalog


def paths(catalog: Catalog) -> dict[bytes, int]:
    return {record.path: record.id for record in catalog.files.all_files()}


async def test_rename_then_directory_rename(store: Path) -> None:
    """mv rocket.jpg animals/launch.jpg; mv animals zoo: the record follows both."""
    first = await run_tracker(store, lambda tracker: None)
    ids = paths(first)
    first.close()

    def report(tracker: ChangeTracker) -> None:
        os.rename(store / "rocket.jpg", store / "animals" / "launch.jpg")
        tracker.renamed(
            b"rocket.jpg", b"animals/launch.jpg", False, reader(store / "animals/launch.jpg")
        )
        os.rename(store / "animals", store / "zoo")
        tracker.renamed(b"animals", b"zoo", True, None)

    catalog = await run_tracker(store, report)
    assert paths(catalog) == {
        b"zoo/launch.jpg": ids[b"rocket.jpg"],
        b"zoo/cat.png": ids[b"animals/cat.png"],
        b"coffee.png": ids[b"coffee.png"],
    }


async def test_write_then_directory_rename(store: Path, photos: dict[str, Path]) -> None:
    def report(tracker: ChangeTracker) -> None:
        shutil.copy(photos["moon.png"], store / "animals" / "moon.png")
        tracker.written([b"animals/moon.png"], reader(store / "animals" / "moon.png"))
        os.rename(store / "animals", store / "zoo")
        tracker.renamed(b"animals", b"zoo", True, None)

    catalog = await run_tracker(store, report)
    record = catalog.files.get(b"zoo/moon.png")
    assert record is not None and record.size == photos["moon.png"].stat().st_size
    assert b"animals/moon.png" not in paths(catalog)


async def test_temporary_name_renamed_into_a_moved_directory(
    store: Path, photos: dict[str, Path]
) -> None:
    """x.tmp -> animals/x.jpg, then animals -> zoo: catalogued at zoo/x.jpg."""

    def report(tracker: ChangeTracker) -> None:
        shutil.copy(photos["moon.png"], store / "x.tmp")
        tracker.written([b"x.tmp"], reader(store / "x.tmp"))  # not an image name
        os.rename(store / "x.tmp", store / "animals" / "x.jpg")
        tracker.renamed(b"x.tmp", b"animals/x.jpg", False, reader(store / "animals" / "x.jpg"))
        os.rename(store / "animals", store / "zoo")
        tracker.renamed(b"animals", b"zoo", True, None)

    catalog = await run_tracker(store, report)
    assert set(paths(catalog)) == {b"zoo/x.jpg", b"zoo/cat.png", b"rocket.jpg", b"coffee.png"}


async def test_rewrite_then_rename_keeps_the_new_content(
    store: Path, photos: dict[str, Path]
) -> None:
    def report(tracker: ChangeTracker) -> None:
        shutil.copy(photos["moon.png"], store / "rocket.jpg")
        tracker.written([b"rocket.jpg"], reader(store / "rocket.jpg"))
        os.rename(store / "rocket.jpg", store / "moon.jpg")
        tracker.renamed(b"rocket.jpg", b"moon.jpg", False, reader(store / "moon.jpg"))

    catalog = await run_tracker(store, report)
    record = catalog.files.get(b"moon.jpg")
    assert record is not None and record.size == photos["moon.png"].stat().st_size
    assert catalog.files.get(b"rocket.jpg") is None


async def test_written_then_removed_before_applied(store: Path, photos: dict[str, Path]) -> None:
    def report(tracker: ChangeTracker) -> None:
        shutil.copy(photos["moon.png"], store / "moon.png")
        tracker.written([b"moon.png"], reader(store / "moon.png"))
        os.unlink(store / "moon.png")
        tracker.removed(b"moon.png", is_dir=False)

    catalog = await run_tracker(store, report)
    assert b"moon.png" not in paths(catalog)


async def test_renaming_an_image_to_another_kind_drops_it(store: Path) -> None:
    def report(tracker: ChangeTracker) -> None:
        os.rename(store / "rocket.jpg", store / "rocket.txt")
        tracker.renamed(b"rocket.jpg", b"rocket.txt", False, reader(store / "rocket.txt"))

    catalog = await run_tracker(store, report)
    assert b"rocket.jpg" not in paths(catalog) and len(paths(catalog)) == 2


async def test_write_through_a_hard_link_updates_the_image_name(store: Path) -> None:
    """notes.txt and rocket.jpg are one file: writing "notes.txt" changes the image."""

    def report(tracker: ChangeTracker) -> None:
        os.unlink(store / "notes.txt")
        os.link(store / "rocket.jpg", store / "notes.txt")
        (store / "notes.txt").write_bytes(b"new")
        tracker.written([b"rocket.jpg", b"notes.txt"], reader(store / "notes.txt"))

    catalog = await run_tracker(store, report)
    record = catalog.files.get(b"rocket.jpg")
    assert record is not None and record.size == 3
    assert catalog.files.get(b"notes.txt") is None


async def test_directory_renamed_over_stale_records(store: Path) -> None:
    """Records under the target of a directory rename are stale (it was empty)."""
    first = await run_tracker(store, lambda tracker: None)
    first.files.upsert(b"zoo/ghost.png", 1, 1, "stale")  # e.g. left by a change made outside
    first.close()

    def report(tracker: ChangeTracker) -> None:
        os.rename(store / "animals", store / "zoo")
        tracker.renamed(b"animals", b"zoo", True, None)

    catalog = await run_tracker(store, report)
    assert set(paths(catalog)) == {b"zoo/cat.png", b"rocket.jpg", b"coffee.png"}


async def test_changes_the_catalog_refused_are_caught_up_by_a_rescan(
    store: Path, photos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk makes the catalog refuse writes; once it takes them again, a rescan
    records what was missed, without a remount."""
    monkeypatch.setattr(tracker_module, "CATCH_UP_AFTER", 0.05)
    settings = Settings.load(store)
    catalog = Catalog.open(settings.catalog_path)
    tracker = ChangeTracker(settings, catalog)
    real_upsert = catalog.files.upsert
    refusals = []

    def full_disk(*args: Any) -> bool:
        if len(refusals) < 3:  # the first write, and the first rescans, are refused
            refusals.append(args[0])
            raise sqlite3.OperationalError("database or disk is full")
        return real_upsert(*args)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(tracker.run)
        await tracker.reconciled.wait()
        monkeypatch.setattr(catalog.files, "upsert", full_disk)
        shutil.copy(photos["moon.png"], store / "moon.png")
        tracker.written([b"moon.png"], reader(store / "moon.png"))
        with trio.fail_after(20):
            while catalog.files.get(b"moon.png") is None:
                await trio.sleep(0.02)
        tracker.close()
    assert refusals == [b"moon.png"] * 3
    record = catalog.files.get(b"moon.png")
    assert record is not None and record.size == photos["moon.png"].stat().st_size
