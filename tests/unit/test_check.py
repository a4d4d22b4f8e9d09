"""`semfs check [--repair]`: each kind of damage a crash or a hand edit can leave is
found, named, and repaired, and the repaired store checks clean.

The store is indexed once by the real `semfs index` (real models), with a rebuild after
every vector so that an Annoy base exists; each test damages a copy of it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import SAMPLE_DIR

INDEXED = 3


def semfs(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "semfs", *map(str, args)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def check(store: Path, *more: str) -> tuple[int, dict[str, Any]]:
    result = semfs("check", store, "--json", *more)
    assert result.returncode in (0, 1, 4), result.stderr
    assert result.stdout.startswith("{"), (result.returncode, result.stdout, result.stderr)
    return result.returncode, json.loads(result.stdout)


def kinds(report: dict[str, Any]) -> set[str]:
    return {finding["kind"] for finding in report["findings"]}


def sql(store: Path, statement: str, *parameters: object) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(store / ".semfs" / "catalog.sqlite3", isolation_level=None)
    try:
        return db.execute(statement, parameters).fetchall()
    finally:
        db.close()


@pytest.fixture(scope="module")
def indexed_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("indexed") / "store"
    (root / ".semfs").mkdir(parents=True)
    (root / "animals").mkdir()
    shutil.copy(SAMPLE_DIR / "rocket.jpg", root / "rocket.jpg")
    shutil.copy(SAMPLE_DIR / "coffee.png", root / "coffee.png")
    shutil.copy(SAMPLE_DIR / "chelsea.png", root / "animals" / "cat.png")
    (root / ".semfs" / "config.toml").write_text("rebuild_threshold = 1\n")
    result = semfs("index", root, "--quiet")
    assert f"indexed {INDEXED}, failed 0" in result.stdout, result.stderr
    return root


@pytest.fixture
def store(indexed_store: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "store"
    shutil.copytree(indexed_store, copy, symlinks=True)
    return copy


def index_files(store: Path) -> list[Path]:
    return sorted((store / ".semfs" / "index").iterdir())


def test_an_indexed_store_is_consistent(store: Path) -> None:
    code, report = check(store)
    assert (code, report["consistent"], report["findings"]) == (0, True, [])
    assert [path.name for path in index_files(store)] == [f"base-3-384d-{INDEXED}n.ann"]
    assert [path.name for path in image_index_files(store)] == [f"base-3-256d-{INDEXED}n.ann"]
    assert semfs("check", store).stdout.rstrip().endswith("consistent")
    code, repair = check(store, "--repair")
    assert (code, repair["repairs"]) == (0, [])  # nothing to do: nothing done


def _add_image(store: Path) -> None:
    shutil.copy(SAMPLE_DIR / "astronaut.png", store / "animals" / "astronaut.png")


def _remove_image(store: Path) -> None:
    (store / "rocket.jpg").unlink()


def _change_image(store: Path) -> None:
    with open(store / "coffee.png", "ab") as file:
        file.write(b"appended by someone while unmounted")


def _drop_a_vector(store: Path) -> None:
    sql(store, "DELETE FROM vectors WHERE file_id = (SELECT min(file_id) FROM vectors)")


def _drop_a_caption(store: Path) -> None:
    sql(store, "DELETE FROM descriptions WHERE file_id = (SELECT min(id) FROM files)")


def _lose_a_queue_entry(store: Path) -> None:
    sql(store, "UPDATE files SET state = 'queued' WHERE id = (SELECT min(id) FROM files)")


def _fail_without_reason(store: Path) -> None:
    sql(
        store,
        "UPDATE files SET state = 'failed', error = NULL WHERE id = (SELECT min(id) FROM files)",
    )


def _change_a_vector_behind_the_index(store: Path) -> None:
    (other,) = sql(store, "SELECT vector FROM vectors ORDER BY seq DESC LIMIT 1")[0]
    sql(store, "UPDATE vectors SET vector = ? WHERE seq = (SELECT min(seq) FROM vectors)", other)


def _lose_tag_rows(store: Path) -> None:
    sql(store, "DELETE FROM keywords WHERE file_id = (SELECT min(file_id) FROM keywords)")


def _leave_a_half_written_build(store: Path) -> None:
    (store / ".semfs" / "index" / "base-7.tmp").write_bytes(b"\0" * 4096)


def _damage_the_index(store: Path) -> None:
    (base,) = index_files(store)
    base.write_bytes(b"\xff" * 1000)  # not a whole number of Annoy nodes


def _number_the_index_ahead(store: Path) -> None:
    (base,) = index_files(store)
    base.rename(base.with_name(f"base-99-384d-{INDEXED}n.ann"))


def image_index_files(store: Path) -> list[Path]:
    return sorted((store / ".semfs" / "image-index").iterdir())


def _change_an_image_vector_behind_its_index(store: Path) -> None:
    (other,) = sql(store, "SELECT vector FROM image_vectors ORDER BY seq DESC LIMIT 1")[0]
    sql(store, "UPDATE image_vectors SET vector = ? "
               "WHERE seq = (SELECT min(seq) FROM image_vectors)", other)  # fmt: skip


def _damage_the_image_index(store: Path) -> None:
    (base,) = image_index_files(store)
    base.write_bytes(b"\xff" * 1000)


def _leave_a_half_written_image_index_build(store: Path) -> None:
    (store / ".semfs" / "image-index" / "base-9.tmp").write_bytes(b"\0" * 4096)


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "image added while unmounted": (_add_image, "not-catalogued"),
    "image removed while unmounted": (_remove_image, "catalogued-but-gone"),
    "image changed while unmounted": (_change_image, "changed-since-catalogued"),
    "vector lost": (_drop_a_vector, "indexed-without-vector"),
    "caption lost": (_drop_a_caption, "indexed-without-caption"),
    "queue entry lost": (_lose_a_queue_entry, "queued-but-not-in-queue"),
    "failure without a reason": (_fail_without_reason, "failed-without-reason"),
    "tag rows lost": (_lose_tag_rows, "keywords-out-of-date"),
    "vector changed behind the index": (_change_a_vector_behind_the_index, "missing-from-index"),
    "half-written index build": (_leave_a_half_written_build, "half-written-index"),
    "unreadable index": (_damage_the_index, "index-unreadable"),
    "index numbered ahead of the catalog": (_number_the_index_ahead, "index-ahead-of-catalog"),
    "image vector changed behind its index": (
        _change_an_image_vector_behind_its_index,
        "image-missing-from-index",
    ),
    "unreadable image index": (_damage_the_image_index, "image-index-unreadable"),
    "half-written image index build": (
        _leave_a_half_written_image_index_build,
        "image-half-written-index",
    ),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_damage_is_found_named_and_repaired(store: Path, damage: str) -> None:
    make_damage, expected = DAMAGE[damage]
    make_damage(store)

    code, report = check(store)
    assert code == 4 and not report["consistent"]
    assert expected in kinds(report), report
    assert all(finding["count"] > 0 and finding["examples"] for finding in report["findings"])

    code, repaired = check(store, "--repair")
    assert code == 1, repaired
    assert repaired["repairs"] and repaired["after"]["consistent"], repaired["after"]
    assert check(store) == (0, repaired["after"])
    # The store's images are all still catalogued; anything the repair could not keep
    # waits in the queue to be derived again.
    files = sql(store, "SELECT count(*), count(*) FILTER (WHERE state = 'indexed') FROM files")
    queued = sql(store, "SELECT count(*) FROM ingest_queue")[0][0]
    images = len([p for p in store.rglob("*") if p.suffix in (".png", ".jpg")])
    assert files[0][0] == images and files[0][1] + queued == images


def test_a_damaged_catalog_is_kept_aside_and_rebuilt_from_what_can_be_read(store: Path) -> None:
    sql(store, "INSERT INTO saved_queries (query, created_ns) VALUES (?, 1)", b"a rocket")
    catalog = store / ".semfs" / "catalog.sqlite3"
    sql(store, "PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(catalog.read_bytes())
    page = 4096
    assert len(data) >= 4 * page
    data[2 * page : 3 * page] = b"\xa5" * page  # one page of the tables overwritten
    catalog.write_bytes(bytes(data))

    code, report = check(store)
    assert code == 4 and kinds(report) == {"catalog-damaged"}

    code, repaired = check(store, "--repair")
    assert code == 1 and repaired["after"]["consistent"], repaired
    assert any("damaged catalog kept as" in action for action in repaired["repairs"])
    assert list((store / ".semfs").glob("catalog.sqlite3.damaged-*"))
    assert len(sql(store, "SELECT id FROM files")) == INDEXED  # every image catalogued
    indexed = sql(store, "SELECT count(*) FROM files WHERE state = 'indexed'")[0][0]
    queued = sql(store, "SELECT count(*) FROM ingest_queue")[0][0]
    assert indexed + queued == INDEXED


def test_repair_refuses_a_mounted_store(store: Path) -> None:
    lock = store / ".semfs" / "mount.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, sys, time; f = open(sys.argv[1], 'r+'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
         str(lock)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        lock.write_text("4242\n/mnt/photos\nsearch\n")
        result = semfs("check", store, "--repair")
        assert result.returncode == 1 and "unmount it first" in result.stderr
        assert semfs("check", store).returncode == 0  # checking alone is allowed
    finally:
        holder.kill()
        holder.wait()


def test_features_stored_before_the_reduction_are_converted_not_computed_again(
    store: Path,
) -> None:
    """A store from before the features were reduced to 256 (feature_projection) keeps
    its search by example: the stored 1,280-d unit vectors and a copied-in example are
    converted to exactly what the model computes now, without decoding any image."""
    from semfs.catalog.database import Catalog
    from semfs.config import Settings
    from semfs.ml.image_features import unit_rows
    from semfs.ml.imaging import decode
    from semfs.ml.lite_classifier import shared_classifier
    from semfs.search.engine import Engine

    stored = sql(store, "SELECT file_id, vector FROM image_vectors")
    expected = {file_id: np.frombuffer(vector, dtype=np.float32) for file_id, vector in stored}
    assert len(expected) == INDEXED
    classifier = shared_classifier("efficientnet-lite0")
    rows = sql(store, "SELECT v.file_id, f.dir, f.name FROM image_vectors v "
                      "JOIN files f ON f.id = v.file_id")  # fmt: skip
    for file_id, directory, name in rows:
        with open(store / os.fsdecode(directory) / os.fsdecode(name), "rb") as file:
            image = decode(file, 10**8, 10**8).image
        pooled = unit_rows(classifier.features(classifier.pixels(image)[None]))[0]
        sql(store, "UPDATE image_vectors SET embedder = ?, vector = ? WHERE file_id = ?",
            "efficientnet-lite0:pooled", pooled.tobytes(), file_id)  # fmt: skip
        if file_id == rows[0][0]:
            sql(store, "INSERT INTO examples (name, file_id, embedder, vector, created_ns) "
                "VALUES (?, NULL, ?, ?, 1)", b"copied.jpg", "efficientnet-lite0:pooled",
                pooled.tobytes())  # fmt: skip
    for old_base in image_index_files(store):  # its base had another size then
        old_base.unlink()
    by_example = semfs("search", store, "--image", SAMPLE_DIR / "chelsea.png")
    assert by_example.stdout == "(no image matches)\n"
    assert "from before they were reduced" in by_example.stderr

    catalog = Catalog.open(store / ".semfs" / "catalog.sqlite3")
    try:
        engine = Engine(Settings.load(store), catalog)
        engine.load()
        assert engine.convert_image_features() == INDEXED
        assert engine.convert_image_features() == 0  # nothing left to convert
        assert catalog.features.requeue_features_not_by(engine.image_model) == 0
    finally:
        catalog.close()
    converted = dict(sql(store, "SELECT file_id, vector FROM image_vectors "
                                "WHERE embedder = 'efficientnet-lite0:svd256'"))  # fmt: skip
    assert sorted(converted) == sorted(expected)
    for file_id, vector in converted.items():
        assert float(np.frombuffer(vector, dtype=np.float32) @ expected[file_id]) > 0.9999
    ((embedder, example),) = sql(store, "SELECT embedder, vector FROM examples")
    assert embedder == "efficientnet-lite0:svd256"
    assert float(np.frombuffer(example, dtype=np.float32) @ expected[rows[0][0]]) > 0.9999
    assert [path.name for path in image_index_files(store)] == [f"base-6-256d-{INDEXED}n.ann"]
    code, report = check(store)
    assert (code, report["consistent"], report["findings"]) == (0, True, [])


def test_a_faiss_ivf_base_is_checked_and_repaired_as_an_annoy_one_is(store: Path) -> None:
    """With index_engine = "ivf" (the default from 20,000 images) the base is a FAISS file:
    check reads its vectors back by file id, and repair rebuilds it as one."""
    from semfs.catalog.database import Catalog
    from semfs.config import Settings
    from semfs.search.engine import index_options
    from semfs.search.index import VectorIndex

    (store / ".semfs" / "config.toml").write_text('rebuild_threshold = 1\nindex_engine = "ivf"\n')
    settings = Settings.load(store)
    catalog = Catalog.open(settings.catalog_path)
    try:
        embedder = catalog.get_meta("embedder")
        assert embedder is not None
        index = VectorIndex(settings.index_dir, embedder, 384, index_options(settings))
        index.load(catalog)
        assert index.needs_rebuild(catalog)  # an Annoy base, where the setting asks for IVF
        index.rebuild(catalog)
    finally:
        catalog.close()
    assert [path.name for path in index_files(store)] == [f"base-3-384d-{INDEXED}n.ivf"]
    assert check(store)[0] == 0

    _change_a_vector_behind_the_index(store)
    code, report = check(store)
    assert code == 4 and "missing-from-index" in kinds(report), report
    code, repaired = check(store, "--repair")
    assert code == 1 and repaired["after"]["consistent"], repaired
    assert [path.suffix for path in index_files(store)] == [".ivf"]

    (base,) = index_files(store)
    (base / "index").write_bytes(b"\xff" * 1000)
    code, report = check(store)
    assert code == 4 and "index-unreadable" in kinds(report), report
