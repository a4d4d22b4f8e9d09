"""The change tracker applies filesystem events to the catalog in order, even when the
store has moved on by the time an event is applied."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import trio

from semfs.catalog import Catalog
from semfs.config import Settings
from semfs.tracker import ChangeTracker


async def run_tracker(
    store: Path,
    report: Callable[[ChangeTracker], None],
    locate: dict[int, list[bytes]] | None = None,
) -> Catalog:
    """Reconcile `store`, let `report` queue events, apply them all, return the catalog."""
    settings = Settings.load(store)
    catalog = Catalog.open(settings.catalog_path)
    tracker = ChangeTracker(settings, catalog)
    if locate is not None:
        tracker.path_of_inode = lambda inode: locate[inode][-1] if inode in locate else None
        tracker.paths_of_inode = lambda inode: list(locate.get(inode, []))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(tracker.run)
        await tracker.reconciled.wait()
        report(tracker)
        tracker.close()
    return catalog


def paths(catalog: Catalog) -> dict[bytes, int]:
    return {record.path: record.id for record in catalog.all_files()}


async def test_rename_then_directory_rename_applied_late(store: Path) -> None:
    """mv rocket.jpg animals/launch.jpg; mv animals zoo -- both done before either is
    applied: the record must follow, not be dropped because animals/ is gone."""
    first = await run_tracker(store, lambda tracker: None)
    ids = paths(first)
    first.close()

    def report(tracker: ChangeTracker) -> None:
        os.rename(store / "rocket.jpg", store / "animals" / "launch.jpg")
        os.rename(store / "animals", store / "zoo")
        tracker.renamed(b"rocket.jpg", b"animals/launch.jpg", is_dir=False)
        tracker.renamed(b"animals", b"zoo", is_dir=True)

    catalog = await run_tracker(store, report)
    assert paths(catalog) == {
        b"zoo/launch.jpg": ids[b"rocket.jpg"],
        b"zoo/cat.png": ids[b"animals/cat.png"],
        b"coffee.png": ids[b"coffee.png"],
    }


async def test_write_then_directory_rename_lands_at_the_new_path(
    store: Path, photos: dict[str, Path]
) -> None:
    def report(tracker: ChangeTracker) -> None:
        shutil.copy(photos["moon.png"], store / "animals" / "moon.png")
        os.rename(store / "animals", store / "zoo")
        tracker.written(b"animals/moon.png", inode=42)
        tracker.renamed(b"animals", b"zoo", is_dir=True)

    catalog = await run_tracker(store, report, locate={42: [b"zoo/moon.png"]})
    assert b"zoo/moon.png" in paths(catalog)
    assert b"animals/moon.png" not in paths(catalog)


async def test_temporary_name_renamed_into_a_moved_directory(
    store: Path, photos: dict[str, Path]
) -> None:
    """x.tmp -> animals/x.jpg, then animals -> zoo: catalogued at zoo/x.jpg."""

    def report(tracker: ChangeTracker) -> None:
        shutil.copy(photos["moon.png"], store / "x.tmp")
        os.rename(store / "x.tmp", store / "animals" / "x.jpg")
        os.rename(store / "animals", store / "zoo")
        tracker.written(b"x.tmp", inode=7)  # not an image name: ignored
        tracker.renamed(b"x.tmp", b"animals/x.jpg", is_dir=False, inode=7)
        tracker.renamed(b"animals", b"zoo", is_dir=True)

    catalog = await run_tracker(store, report, locate={7: [b"zoo/x.jpg"]})
    assert set(paths(catalog)) == {b"zoo/x.jpg", b"zoo/cat.png", b"rocket.jpg", b"coffee.png"}


async def test_renaming_an_image_to_another_kind_drops_it(store: Path) -> None:
    def report(tracker: ChangeTracker) -> None:
        os.rename(store / "rocket.jpg", store / "rocket.txt")
        tracker.renamed(b"rocket.jpg", b"rocket.txt", is_dir=False)

    catalog = await run_tracker(store, report)
    assert b"rocket.jpg" not in paths(catalog) and len(paths(catalog)) == 2


async def test_write_through_a_hard_link_updates_the_image_name(store: Path) -> None:
    """notes.txt and rocket.jpg are one file: writing "notes.txt" changes the image."""

    def report(tracker: ChangeTracker) -> None:
        os.unlink(store / "notes.txt")
        os.link(store / "rocket.jpg", store / "notes.txt")
        with open(store / "notes.txt", "wb") as file:
            file.write(b"new")
        tracker.written(b"notes.txt", inode=9)

    catalog = await run_tracker(store, report, locate={9: [b"rocket.jpg", b"notes.txt"]})
    record = catalog.get(b"rocket.jpg")
    assert record is not None and record.size == 3
    assert catalog.get(b"notes.txt") is None
