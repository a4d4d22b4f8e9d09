"""Reconcile scans on real directories and a real catalog."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from semfs.catalog.database import Catalog, FileState
from semfs.catalog.reconcile import ReconcileReport
from semfs.catalog.reconcile import reconcile as reconcile_with
from semfs.config import Settings
from semfs.store.backing import BackingStore


@pytest.fixture
def settings(store: Path) -> Settings:
    return Settings.load(store)


@pytest.fixture
def catalog(settings: Settings) -> Catalog:
    return Catalog.open(settings.catalog_path)


def reconcile(
    settings: Settings, catalog: Catalog, should_stop: Callable[[], bool] = lambda: False
) -> ReconcileReport:
    store = BackingStore(os.fsencode(settings.store))
    try:
        return reconcile_with(settings, catalog, store, should_stop)
    finally:
        store.close()


def paths(catalog: Catalog) -> set[bytes]:
    return {record.path for record in catalog.files.all_files()}


def test_first_scan_adds_images_only(settings: Settings, catalog: Catalog) -> None:
    report = reconcile(settings, catalog)
    assert (report.added, report.removed, report.moved) == (3, 0, 0)
    assert paths(catalog) == {b"rocket.jpg", b"coffee.png", b"animals/cat.png"}
    assert catalog.stats().queued == 3
    second = reconcile(settings, catalog)
    assert second.unchanged == 3 and second.added == second.changed == 0


def test_moves_keep_records_and_state(
    settings: Settings, catalog: Catalog, store: Path, photos: dict[str, Path]
) -> None:
    reconcile(settings, catalog)
    for record in catalog.queue.queued(10):
        catalog.queue.finish(record.id, FileState.INDEXED)
    ids = {record.path: record.id for record in catalog.files.all_files()}
    (store / "deep" / "er").mkdir(parents=True)
    os.rename(store / "animals", store / "deep" / "er" / "animals")
    os.rename(store / "rocket.jpg", store / "deep" / "launch.JPG")
    shutil.copy(photos["moon.png"], store / "coffee.png")
    report = reconcile(settings, catalog)
    assert (report.moved, report.changed, report.added, report.removed) == (2, 1, 0, 0)
    moved = catalog.files.get(b"deep/er/animals/cat.png")
    assert moved is not None and moved.id == ids[b"animals/cat.png"]
    assert moved.state is FileState.INDEXED
    launch = catalog.files.get(b"deep/launch.JPG")
    assert launch is not None and launch.id == ids[b"rocket.jpg"]
    assert catalog.stats().queued == 1  # only the changed coffee.png


def test_vanished_files_and_directories_are_removed(
    settings: Settings, catalog: Catalog, store: Path
) -> None:
    reconcile(settings, catalog)
    shutil.rmtree(store / "animals")
    (store / "rocket.jpg").unlink()
    report = reconcile(settings, catalog)
    assert report.removed == 2 and paths(catalog) == {b"coffee.png"}


def test_copies_are_new_records(settings: Settings, catalog: Catalog, store: Path) -> None:
    reconcile(settings, catalog)
    shutil.copy(store / "rocket.jpg", store / "rocket-copy.jpg")
    report = reconcile(settings, catalog)
    assert report.added == 1 and report.moved == 0
    assert len(catalog.files.find_by_hash(catalog.files.get(b"rocket.jpg").content_hash or "")) == 2  # type: ignore[union-attr]


def test_unreadable_directory_keeps_its_records(
    settings: Settings, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    reconcile(settings, catalog)
    real_open = BackingStore.open_directory

    def failing_open(self: BackingStore, relative: bytes) -> int:
        if relative == b"animals":
            raise PermissionError(13, "Permission denied", relative)
        return real_open(self, relative)

    monkeypatch.setattr(BackingStore, "open_directory", failing_open)
    report = reconcile(settings, catalog)
    assert report.removed == 0 and len(report.errors) == 1
    assert b"animals/cat.png" in paths(catalog)


def test_interrupted_scan_removes_nothing(
    settings: Settings, catalog: Catalog, store: Path
) -> None:
    reconcile(settings, catalog)
    (store / "rocket.jpg").unlink()
    report = reconcile(settings, catalog, should_stop=lambda: True)
    assert report.interrupted and report.removed == 0
    assert b"rocket.jpg" in paths(catalog)


def test_state_directory_and_symlinks_are_not_scanned(
    settings: Settings, catalog: Catalog, store: Path
) -> None:
    (store / ".semfs" / "thumb.jpg").write_bytes(b"x")
    os.symlink(store / "rocket.jpg", store / "alias.jpg")
    reconcile(settings, catalog)
    assert paths(catalog) == {b"rocket.jpg", b"coffee.png", b"animals/cat.png"}
