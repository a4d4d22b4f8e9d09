"""The ingest worker with the real models: unexpected errors and a captioner that cannot
load leave images queued, never lost and never all failed."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from semfs.catalog import Catalog
from semfs.config import Settings
from semfs.engine import Engine
from semfs.fs.backing import BackingStore
from semfs.ingest import CaptionerUnavailable, IngestWorker
from semfs.reconcile import reconcile


@pytest.fixture
def engine(
    tmp_path: Path, photos: dict[str, Path], request: pytest.FixtureRequest
) -> Iterator[Engine]:
    store = tmp_path / "store"
    store.mkdir()
    for name in ("coffee.png", "chelsea.png", "rocket.jpg"):
        shutil.copy(photos[name], store / name)
    captioner = getattr(request, "param", "classifier")
    settings = Settings.load(store, captioner=captioner)
    catalog = Catalog.open(settings.catalog_path)
    backing = BackingStore(os.fsencode(store))
    reconcile(settings, catalog, backing)
    engine = Engine(settings, catalog)
    engine.load()
    yield engine
    backing.close()
    catalog.close()


def test_an_unexpected_error_on_one_image_is_retried_and_the_rest_go_on(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, photos: dict[str, Path]
) -> None:
    import semfs.ingest

    real_decode = semfs.ingest.decode
    cat = photos["chelsea.png"].read_bytes()

    def decode(file, max_pixels):  # type: ignore[no-untyped-def]
        if file.read(len(cat)) == cat:
            raise MemoryError("pretend this image needs more memory than there is")
        file.seek(0)
        return real_decode(file, max_pixels)

    monkeypatch.setattr(semfs.ingest, "decode", decode)
    worker = IngestWorker(engine, BackingStore(os.fsencode(engine.settings.store)))
    assert worker.run_batch() == 3
    stats = engine.catalog.stats()
    assert (stats.indexed, stats.queued, stats.failed) == (2, 1, 0)
    (item,) = engine.catalog.queue_items(10)
    assert item.record.path == b"chelsea.png" and item.attempts == 1

    monkeypatch.setattr(semfs.ingest, "decode", real_decode)  # the cause went away
    assert worker.run_batch() == 1
    assert engine.catalog.stats().indexed == 3


@pytest.mark.parametrize("engine", ["transformers:/nonexistent/captioning-model"], indirect=True)
def test_a_captioner_that_cannot_load_leaves_every_image_queued(engine: Engine) -> None:
    worker = IngestWorker(engine, BackingStore(os.fsencode(engine.settings.store)))
    for _ in range(5):  # more than the attempts an image gets
        with pytest.raises(CaptionerUnavailable, match="cannot load"):
            worker.run_batch()
    stats = engine.catalog.stats()
    assert (stats.queued, stats.failed) == (3, 0)
    assert all(item.attempts == 0 for item in engine.catalog.queue_items(10))
