"""The catalog's side of search by example: the feature queue a trigger fills, results
for an image described again meanwhile are dropped, and saved examples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from semfs.catalog.database import Catalog, Description
from semfs.catalog.features import FeatureTask

MODEL = "efficientnet-lite0:svd256"


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog.open(tmp_path / "catalog.sqlite3")


def describe(catalog: Catalog, path: bytes) -> int:
    """Catalogue and ingest `path` as ingest would: description, text vector, indexed."""
    catalog.files.upsert(path, 10, 1, path.decode())
    (item,) = [i for i in catalog.queue.queue_items(100) if i.record.path == path]
    description = Description("a photo of a cat", "model", "test", ["cat"])
    assert catalog.queue.store_result(item, description, "embedder", b"\0" * 16) is not None
    return item.record.id


def vector(seed: int) -> bytes:
    values = np.random.default_rng(seed).normal(size=8).astype(np.float32)
    return (values / np.linalg.norm(values)).tobytes()


def test_every_described_image_waits_for_its_features_once(catalog: Catalog) -> None:
    first, second = describe(catalog, b"a.jpg"), describe(catalog, b"b.jpg")
    tasks = catalog.features.feature_tasks(10)
    assert [t.file_id for t in tasks] == [first, second]
    assert catalog.features.feature_counts() == (0, 2)
    stored = catalog.features.store_features(MODEL, [(tasks[0], vector(1)), (tasks[1], None)])
    assert [file_id for file_id, _ in stored] == [first]  # b.jpg could not be decoded
    assert catalog.features.feature_tasks(10) == []
    assert catalog.features.feature_counts() == (1, 0)
    assert catalog.examples.image_vector_of(first, MODEL) == vector(1)
    assert catalog.examples.image_vector_of(first, "another model") is None


def test_a_result_for_an_image_described_again_meanwhile_is_dropped(catalog: Catalog) -> None:
    file_id = describe(catalog, b"a.jpg")
    (task,) = catalog.features.feature_tasks(10)
    catalog.features.store_features(MODEL, [(task, vector(1))])
    # The file changes: ingest describes it anew, which drops its old features and
    # queues it with a new generation; a result computed from the old bytes is stale.
    catalog.files.upsert(b"a.jpg", 11, 2, "changed")
    describe_again = next(i for i in catalog.queue.queue_items(10) if i.record.id == file_id)
    catalog.queue.store_result(
        describe_again, Description("a dog", "model", "t", ["dog"]), "e", b"1"
    )
    assert catalog.examples.image_vector_of(file_id, MODEL) is None
    (fresh,) = catalog.features.feature_tasks(10)
    stale = FeatureTask(file_id, fresh.generation - 1, b"a.jpg")
    assert catalog.features.store_features(MODEL, [(stale, vector(2))]) == []
    assert catalog.features.feature_tasks(10) == [fresh]
    assert len(catalog.features.store_features(MODEL, [(fresh, vector(3))])) == 1
    assert catalog.examples.image_vector_of(file_id, MODEL) == vector(3)


def test_features_computed_with_the_caption_take_the_image_off_the_queue(
    catalog: Catalog,
) -> None:
    first, second = describe(catalog, b"a.jpg"), describe(catalog, b"b.jpg")
    stored = catalog.features.store_features_of_described(MODEL, [(first, vector(1))])
    assert [file_id for file_id, _ in stored] == [first]
    assert catalog.examples.image_vector_of(first, MODEL) == vector(1)
    # the idle pass's:
    assert [task.file_id for task in catalog.features.feature_tasks(10)] == [second]
    assert catalog.features.feature_counts() == (1, 1)
    # The file changed after its description was stored: what was computed is stale.
    catalog.queue.requeue_ids([second])
    assert catalog.features.store_features_of_described(MODEL, [(second, vector(2))]) == []
    assert catalog.examples.image_vector_of(second, MODEL) is None


def test_features_of_another_model_are_computed_again(catalog: Catalog) -> None:
    file_id = describe(catalog, b"a.jpg")
    (task,) = catalog.features.feature_tasks(10)
    catalog.features.store_features("old model", [(task, vector(1))])
    assert catalog.features.requeue_features_not_by(MODEL) == 1
    assert [t.file_id for t in catalog.features.feature_tasks(10)] == [file_id]
    assert catalog.features.requeue_features_not_by(MODEL) == 0  # already waiting


def test_removing_a_file_removes_its_features_and_examples(catalog: Catalog) -> None:
    file_id = describe(catalog, b"dir/a.jpg")
    catalog.features.store_features(MODEL, [(catalog.features.feature_tasks(10)[0], vector(1))])
    catalog.examples.save_example(b"a.jpg", file_id, None, None)
    catalog.examples.save_example(b"mine.jpg", None, MODEL, vector(2))
    assert catalog.examples.indexed_named(b"a.jpg") == [(file_id, b"dir/a.jpg")]
    catalog.files.remove(b"dir/a.jpg")
    assert catalog.features.feature_counts() == (0, 0)
    assert [e.name for e in catalog.examples.examples()] == [b"mine.jpg"]
    assert catalog.examples.examples()[0].vector == vector(2)
    assert catalog.examples.remove_example(b"mine.jpg") and not catalog.examples.remove_example(
        b"mine.jpg"
    )


def test_the_idle_passes_walk_their_queues_instead_of_every_file(catalog: Catalog) -> None:
    """Ingest asks both queues every IDLE_POLL: a plan that scans the files table took
    10 ms a call at 100 k files with the queues empty (100 at 1 M)."""
    for i in range(20):
        describe(catalog, f"cat{i}.png".encode())
    db = catalog._connection._db
    asked: list[str] = []
    db.set_trace_callback(asked.append)
    try:
        catalog.features.feature_tasks(8)
        catalog.texts.text_tasks(8)
    finally:
        db.set_trace_callback(None)
    selects = [sql for sql in asked if sql.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 2, asked
    for sql in selects:
        plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql)]
        assert not any(step.startswith("SCAN f") for step in plan), plan
        assert any("_queue_by_generation" in step for step in plan), plan
