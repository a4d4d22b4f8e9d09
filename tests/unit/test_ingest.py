"""The ingest worker with the real models: unexpected errors and a captioner that cannot
load leave images queued, never lost and never all failed."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from semfs.catalog.database import Catalog
from semfs.catalog.reconcile import reconcile
from semfs.config import Settings
from semfs.errors import ModelError
from semfs.ingest.worker import CaptionerUnavailable, IngestWorker
from semfs.ml.imaging import decode
from semfs.search.engine import Engine
from semfs.store.backing import BackingStore

NAMES = (b"coffee.png", b"chelsea.png", b"rocket.jpg")


@pytest.fixture
def engine(
    tmp_path: Path, photos: dict[str, Path], request: pytest.FixtureRequest
) -> Iterator[Engine]:
    store = tmp_path / "store"
    store.mkdir()
    for name in NAMES:
        shutil.copy(photos[os.fsdecode(name)], store / os.fsdecode(name))
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
    import semfs.ingest.worker

    real_decode = semfs.ingest.worker.decode
    cat = photos["chelsea.png"].read_bytes()

    def decode(file, *limits):  # type: ignore[no-untyped-def]
        if file.read(len(cat)) == cat:
            raise MemoryError("pretend this image needs more memory than there is")
        file.seek(0)
        return real_decode(file, *limits)

    monkeypatch.setattr(semfs.ingest.worker, "decode", decode)
    worker = IngestWorker(engine, BackingStore(os.fsencode(engine.settings.store)))
    assert worker.run_batch() == 3
    stats = engine.catalog.stats()
    assert (stats.indexed, stats.queued, stats.failed) == (2, 1, 0)
    (item,) = engine.catalog.queue.queue_items(10)
    assert item.record.path == b"chelsea.png" and item.attempts == 1

    monkeypatch.setattr(semfs.ingest.worker, "decode", real_decode)  # the cause went away
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
    assert all(item.attempts == 0 for item in engine.catalog.queue.queue_items(10))


def test_exif_facts_are_stored_and_backfilled_for_images_described_before(
    engine: Engine, photos: dict[str, Path]
) -> None:
    from PIL import Image

    from semfs.search.searcher import Hit, matches_filters, year_range_ns

    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "FUJIFILM", "X-T3"
    exif.get_ifd(0x8769)[0x9003] = "2020:02:29 12:00:00"
    gps = exif.get_ifd(0x8825)  # Sydney Opera House
    gps[1], gps[2], gps[3], gps[4] = "S", (33.0, 51.0, 24.0), "E", (151.0, 12.0, 54.0)
    store = engine.settings.store
    Image.open(photos["rocket.jpg"]).save(store / "rocket.jpg", "JPEG", exif=exif)
    reconcile(engine.settings, engine.catalog, BackingStore(os.fsencode(store)))
    worker = IngestWorker(engine, BackingStore(os.fsencode(store)))
    while worker.run_batch():
        pass
    (hit,) = [h for h in engine.catalog.reads.hits([1, 2, 3], engine.embedder.name).values()
              if h.path == b"rocket.jpg"]  # fmt: skip
    assert hit.camera == "FUJIFILM X-T3"
    assert matches_filters(Hit.of(hit, 0.0), year_range_ns((2020, 2020)), "x-t3", None)
    place_and_time = {"place:sydney", "place:australia", "where:Australia/Sydney",
                      "time:afternoon", "season:summer"}  # fmt: skip
    assert place_and_time <= hit.facets and any(t.startswith("colour:") for t in hit.facets)
    assert hit.caption.endswith(", in the afternoon in summer, in Sydney, Australia")

    # A catalog from before the facts were kept: they are read when ingest is idle.
    engine.catalog.queue.set_facts([(hit.file_id, None, None, [])], done_to=0)
    engine.catalog.set_meta("facts_backfilled_to", "0")
    assert worker._backfill_facts() == 3  # one batch: all three described images
    assert worker._backfill_facts() == 0 and engine.catalog.get_meta("facts_backfilled_to") is None
    again = engine.catalog.reads.hits([hit.file_id], engine.embedder.name)[hit.file_id]
    assert again.camera == "FUJIFILM X-T3" and again.time_ns == 1582977600 * 10**9
    assert again.facets == hit.facets  # its own facets (colours too) are kept

    # From before facets (no tokens at all): the backfill gives it time and place.
    with sqlite3.connect(engine.settings.catalog_path) as db:
        db.execute("UPDATE descriptions SET facets = NULL")
    engine.catalog.set_meta("facts_backfilled_to", "0")
    while worker._backfill_facts():
        pass
    old = engine.catalog.reads.hits([hit.file_id], engine.embedder.name)[hit.file_id]
    assert old.facets == place_and_time  # no colours: the pixels are not read again
    assert engine.catalog.reads.token_counts("where:") == [("where:Australia/Sydney", 1)]


def test_idle_work_on_an_image_that_became_a_directory_goes_on(engine: Engine) -> None:
    """An image renamed over by a directory before the tracker has told the catalog:
    the facts backfill and the features pass skip it (an earlier version stopped ingest
    for good with IsADirectoryError)."""
    store = engine.settings.store
    worker = IngestWorker(engine, BackingStore(os.fsencode(store)))
    while worker.run_batch():
        pass
    os.unlink(store / "coffee.png")
    (store / "coffee.png").mkdir()  # the catalog still has the image here
    engine.catalog.set_meta("facts_backfilled_to", "0")
    # Features come with the captions; after a change of the features model all three
    # wait for the idle pass again.
    assert engine.catalog.features.requeue_features_not_by("a features model of before") == 3
    assert worker._idle_work() == 3  # the facts of all three, the directory skipped
    while worker._idle_work():  # then the features of the other two
        pass
    # None waits; the directory keeps its image's vector until the tracker drops the file.
    assert engine.catalog.features.feature_counts() == (3, 0)


def test_image_features_come_from_the_captioning_pass(engine: Engine) -> None:
    """The classifier that captions computes the image features in the same pass: every
    captioned image is searchable by example at once, with no second decode and pass,
    and its vector is the one the features pass would compute."""
    store = engine.settings.store
    worker = IngestWorker(engine, BackingStore(os.fsencode(store)))
    while worker.run_batch():
        pass
    assert engine.catalog.features.feature_counts() == (3, 0)  # nothing left for the idle pass
    assert worker._compute_features() == 0
    model = engine.image_model
    assert engine.images is not None
    for file_id, name in ((engine.catalog.examples.indexed_named(n)[0][0], n) for n in NAMES):
        with open(store / os.fsdecode(name), "rb") as file:
            settings = engine.settings
            image = decode(file, settings.max_image_pixels, settings.max_full_decode_pixels).image
        (expected,) = engine.image_features().features([image])
        stored = np.frombuffer(
            engine.catalog.examples.image_vector_of(file_id, model) or b"", np.float32
        )
        assert float(stored @ expected) > 0.9999
        assert engine.images.searcher.search_vector(expected, 1)[0].file_id == file_id


def test_a_copy_reuses_the_captions_and_features_of_its_original(engine: Engine) -> None:
    store = engine.settings.store
    worker = IngestWorker(engine, BackingStore(os.fsencode(store)))
    while worker.run_batch():
        pass
    shutil.copy(store / "coffee.png", store / "copy of coffee.png")
    reconcile(engine.settings, engine.catalog, BackingStore(os.fsencode(store)))
    (item,) = engine.catalog.queue.queue_items(10)
    assert item.record.content_hash  # hashed, so the copy is known as one

    def no_models(images: object) -> list[str]:
        raise AssertionError("a copy must not need the captioner")

    captioner = engine.captioner()
    captioner.caption = no_models  # type: ignore[method-assign]
    captioner.caption_with_features = no_models  # type: ignore[attr-defined]
    assert worker.run_batch() == 1
    assert engine.catalog.features.feature_counts() == (4, 0)  # none left for the idle pass
    model = engine.image_model
    original, copy = (engine.catalog.examples.indexed_named(n)[0][0]
                      for n in (b"coffee.png", b"copy of coffee.png"))  # fmt: skip
    assert engine.catalog.examples.image_vector_of(
        copy, model
    ) == engine.catalog.examples.image_vector_of(original, model)


def test_image_features_that_cannot_load_leave_captions_stored_and_features_queued(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> None:
        raise ModelError("efficientnet-lite0's feature projection: disk on fire")

    monkeypatch.setattr(engine, "image_features", broken)
    worker = IngestWorker(engine, BackingStore(os.fsencode(engine.settings.store)))
    while worker.run_batch():
        pass
    stats = engine.catalog.stats()
    assert (stats.indexed, stats.queued, stats.failed) == (len(NAMES), 0, 0)
    assert engine.catalog.features.feature_counts() == (0, len(NAMES))  # for the idle pass
