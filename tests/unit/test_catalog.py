"""The catalog on real SQLite: schema versions, file records, the ingest queue."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from semfs.catalog.database import SCHEMA_VERSION, Catalog, FileState, join_path, split_path
from semfs.errors import QuietError


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog.open(tmp_path / "state" / "catalog.sqlite3")


def test_new_catalog_has_current_schema(catalog: Catalog) -> None:
    assert catalog.schema_version == SCHEMA_VERSION >= 1
    assert catalog.stats().files == 0


def test_reopening_keeps_data_and_version(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    first = Catalog.open(path)
    first.files.upsert(b"a.jpg", 1, 2, "h")
    first.close()
    second = Catalog.open(path)
    assert second.schema_version == SCHEMA_VERSION
    record = second.files.get(b"a.jpg")
    assert record is not None and (record.size, record.mtime_ns) == (1, 2)


def test_catalog_from_a_newer_semfs_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    Catalog.open(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(QuietError, match="newer"):
        Catalog.open(path)


def test_upsert_enqueues_new_content_only(catalog: Catalog) -> None:
    assert catalog.files.upsert(b"x/a.jpg", 10, 100, "h1") is True
    assert catalog.files.upsert(b"x/a.jpg", 10, 200, "h1") is False  # touched, same bytes
    record = catalog.files.get(b"x/a.jpg")
    assert record is not None and record.mtime_ns == 200
    catalog.queue.finish(record.id, FileState.INDEXED)
    assert catalog.stats().queued == 0
    assert catalog.files.upsert(b"x/a.jpg", 11, 300, "h2") is True  # new content
    again = catalog.files.get(b"x/a.jpg")
    assert again is not None and again.id == record.id and again.state is FileState.QUEUED
    assert catalog.stats() == catalog.stats().__class__(files=1, indexed=0, queued=1, failed=0)


def test_queue_is_fifo_and_finish_records_outcome(catalog: Catalog) -> None:
    for name in (b"1.jpg", b"2.jpg", b"3.jpg"):
        catalog.files.upsert(name, 1, 1, name.decode())
    queued = catalog.queue.queued(2)
    assert [r.path for r in queued] == [b"1.jpg", b"2.jpg"]
    catalog.queue.finish(queued[0].id, FileState.FAILED, "truncated image")
    catalog.queue.finish(queued[1].id, FileState.INDEXED)
    stats = catalog.stats()
    assert (stats.files, stats.indexed, stats.queued, stats.failed) == (3, 1, 1, 1)
    failed = catalog.files.get(b"1.jpg")
    assert failed is not None and failed.error == "truncated image"


def test_move_keeps_id_and_replaces_target(catalog: Catalog) -> None:
    catalog.files.upsert(b"a.jpg", 1, 1, "ha")
    catalog.files.upsert(b"d/b.jpg", 2, 2, "hb")
    original = catalog.files.get(b"a.jpg")
    assert original is not None
    assert catalog.files.move(b"a.jpg", b"d/b.jpg", 1, 5) is True
    moved = catalog.files.get(b"d/b.jpg")
    assert moved is not None and moved.id == original.id and moved.content_hash == "ha"
    assert catalog.files.get(b"a.jpg") is None and catalog.stats().files == 1
    assert catalog.files.move(b"missing.jpg", b"x.jpg", 0, 0) is False


def test_tree_operations_respect_name_boundaries(catalog: Catalog) -> None:
    for path in (b"a/1.jpg", b"a/b/2.jpg", b"ab/3.jpg", b"a.jpg", b"a0/4.jpg"):
        catalog.files.upsert(path, 1, 1, path.decode())
    assert catalog.files.move_tree(b"a", b"z/a") == 2
    paths = {r.path for r in catalog.files.all_files()}
    assert paths == {b"z/a/1.jpg", b"z/a/b/2.jpg", b"ab/3.jpg", b"a.jpg", b"a0/4.jpg"}
    assert catalog.files.remove_tree(b"z") == 2
    assert {r.path for r in catalog.files.all_files()} == {b"ab/3.jpg", b"a.jpg", b"a0/4.jpg"}


def test_paths_are_kept_as_exact_bytes(catalog: Catalog) -> None:
    odd = b"caf\xe9/\xff\xfe name\n.jpg"  # not UTF-8, with a newline
    catalog.files.upsert(odd, 1, 1, "h")
    assert [r.path for r in catalog.files.all_files()] == [odd]
    assert split_path(odd) == (b"caf\xe9", b"\xff\xfe name\n.jpg")
    assert join_path(*split_path(odd)) == odd
    assert catalog.files.find_by_hash("h")[0].path == odd


def test_removal_also_leaves_the_queue(catalog: Catalog) -> None:
    catalog.files.upsert(b"a.jpg", 1, 1, "h")
    assert catalog.files.remove(b"a.jpg") is True
    assert catalog.stats().queued == 0 and catalog.queue.queued(10) == []


def test_meta_values(catalog: Catalog) -> None:
    assert catalog.get_meta("k") is None
    catalog.set_meta("k", "v1")
    catalog.set_meta("k", "v2")
    assert catalog.get_meta("k") == "v2"


def test_swap_exchanges_records_at_and_below_both_paths(catalog: Catalog) -> None:
    catalog.files.upsert(b"coffee.png", 1, 1, "file")
    catalog.files.upsert(b"animals/cat.png", 2, 2, "inside")
    catalog.files.swap(b"coffee.png", b"animals")
    assert {r.path for r in catalog.files.all_files()} == {b"animals", b"coffee.png/cat.png"}


def test_swap_drops_records_left_at_names_that_hold_no_image_now(catalog: Catalog) -> None:
    catalog.files.upsert(b"coffee.png", 1, 1, "file")
    catalog.files.upsert(b"animals/cat.png", 2, 2, "inside")
    catalog.files.swap(b"coffee.png", b"animals", stale=[b"coffee.png", b"animals"])
    assert {r.path for r in catalog.files.all_files()} == {b"coffee.png/cat.png"}


def test_rename_tree_drops_stale_records_at_the_target(catalog: Catalog) -> None:
    catalog.files.upsert(b"a/1.jpg", 1, 1, "one")
    catalog.files.upsert(b"b/stale.jpg", 1, 1, "stale")
    assert catalog.files.rename_tree(b"a", b"b") == 1
    assert {r.path for r in catalog.files.all_files()} == {b"b/1.jpg"}


def test_files_failed_by_an_ingest_error_are_queued_again(catalog: Catalog) -> None:
    catalog.files.upsert(b"model-broke.jpg", 1, 1, "h1")
    catalog.files.upsert(b"truncated.jpg", 1, 1, "h2")
    broke, truncated = catalog.queue.queue_items(10)
    catalog.queue.retry_later(broke, "ingest error: RuntimeError()", max_attempts=1)
    catalog.queue.fail(truncated, "corrupt or truncated image")
    assert catalog.stats().failed == 2
    assert catalog.queue.requeue_ingest_errors() == 1
    assert [item.record.path for item in catalog.queue.queue_items(10)] == [b"model-broke.jpg"]


def test_search_reads_never_wait_for_a_write_in_progress(catalog: Catalog) -> None:
    """While the ingest thread holds a write transaction (and the shared connection's
    lock), a search's reads go on: on their own connection, seeing only what was
    committed."""
    catalog.reads.save_query(b"cats")
    inside, release = threading.Event(), threading.Event()

    def ingest_writing() -> None:
        with catalog._connection.write() as db:
            db.execute(
                "INSERT INTO saved_queries (query, created_ns) VALUES (?, ?)",
                (b"dogs", time.time_ns()),
            )
            inside.set()
            release.wait(30)

    writer = threading.Thread(target=ingest_writing)
    writer.start()
    assert inside.wait(10)
    seen: list[list[bytes]] = []
    search = threading.Thread(target=lambda: seen.append(catalog.reads.saved_queries()))
    search.start()
    search.join(10)
    answered_while_writing = not search.is_alive()
    release.set()
    writer.join()
    search.join()
    assert answered_while_writing and seen == [[b"cats"]]
    assert catalog.reads.saved_queries() == [b"cats", b"dogs"]


def test_a_commit_that_fails_leaves_no_transaction_open(catalog: Catalog) -> None:
    """A COMMIT refused (here: a deferred foreign key broken) is rolled back, so the
    next write can begin (a full disk refuses COMMIT the same way)."""
    with pytest.raises(sqlite3.IntegrityError), catalog._connection.write() as db:
        db.execute("PRAGMA defer_foreign_keys = ON")
        db.execute("INSERT INTO ingest_queue (file_id, enqueued_ns) VALUES (999, 1)")
    catalog.reads.save_query(b"still writable")
    assert catalog.reads.saved_queries() == [b"still writable"]


def test_files_carry_a_query_by_keyword_or_by_a_word_of_their_text(catalog: Catalog) -> None:
    """The relevance cut's evidence (SearchReads.carrying): a keyword among those asked
    for, or one of the words asked for in the text read in the image (any case)."""
    rows = {"tagged": ('["dog", "lawn"]', ""), "sign": ('["board"]', "STOP here"),
            "both": ('["dog"]', "stop"), "word_inside": ('["board"]', "stopping"),
            "plain": ('["cat"]', "")}  # fmt: skip
    ids = {}
    for name, (keywords, text) in rows.items():
        catalog.files.upsert(name.encode() + b".jpg", 1, 1, name)
        ids[name] = catalog.files.get(name.encode() + b".jpg").id  # type: ignore[union-attr]
        with catalog._connection.write() as db:
            db.execute(
                "INSERT INTO descriptions (file_id, caption, source, captioner, keywords, text) "
                "VALUES (?, '', 'model', 'test', ?, ?)",
                (ids[name], keywords, text),
            )
    everyone = list(ids.values())
    carrying = catalog.reads.carrying
    assert carrying(everyone, ["dog"], []) == {ids["tagged"], ids["both"]}
    assert carrying(everyone, ["dog"], ["Stop"]) == {ids["tagged"], ids["sign"], ids["both"]}
    assert carrying(everyone, [], ["stop"]) == {ids["sign"], ids["both"]}
    assert carrying([ids["plain"]], ["dog", "cat"], ["stop"]) == {ids["plain"]}
    assert carrying([], ["dog"], ["stop"]) == set()
