"""The people and text facets without a mount: people's tokens, words, keywords and
filters; what the words read in an image change; the catalog's text queue (generations,
the caption and its vector replaced, the xattr's value) and a catalog from before it
upgrading."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from PIL import Image

from semfs.catalog.database import SCHEMA_VERSION, Catalog
from semfs.catalog.facet_tokens import people_tokens
from semfs.catalog.records import Description
from semfs.catalog.schema import MIGRATIONS
from semfs.catalog.texts import TextResult, TextTask
from semfs.config import Settings
from semfs.errors import QuietError
from semfs.ingest.facets import Facets, compute_facets, keywords, tokens, with_facets
from semfs.ingest.texts import TEXT_PREFIX, text_result
from semfs.ml.imaging import PhotoFacts
from semfs.ml.people import People
from semfs.search.query import QuerySyntaxError, format_query, parse_query
from semfs.search.searcher import Hit, matches_filters


def _settings(tmp_path: Path, **overrides: str) -> Settings:
    return Settings(store=tmp_path, **overrides)  # type: ignore[arg-type]


def test_people_tokens_and_filters() -> None:
    assert people_tokens(0) == ["people:none"]
    assert people_tokens(1) == ["people:1", "people:1+"]
    assert people_tokens(3) == ["people:3", "people:1+", "people:2+", "people:3+"]
    assert people_tokens(9)[-1] == "people:5+"
    for name, token in [("people:2", "people:2"), ("people:none", "people:none"),
                        ("people:0", "people:none"), ("people:3+", "people:3+")]:  # fmt: skip
        query = parse_query(name)
        assert query.facets == (token,)
        assert parse_query(format_query(query)) == query
    for bad in ("people:many", "people:6+", "people:-1", "people:"):
        with pytest.raises(QuerySyntaxError):
            parse_query(bad)
    three = Hit(1, b"a.jpg", 0.1, "three people", facets=frozenset(people_tokens(3)))
    query = parse_query("people:2+ colour:red")
    assert not matches_filters(three, None, None, None, facets=query.facets)  # both must hold
    red = frozenset([*people_tokens(3), "colour:red"])
    assert matches_filters(
        Hit(1, b"a.jpg", 0.1, "", facets=red), None, None, None, facets=query.facets
    )
    assert not matches_filters(three, None, None, None, facets=parse_query("people:none").facets)


def test_people_become_words_keyword_and_tokens(tmp_path: Path, photos: dict[str, Path]) -> None:
    astronaut = Image.open(photos["astronaut.png"]).convert("RGB")
    astronaut.thumbnail((384, 384))
    found = compute_facets(_settings(tmp_path), astronaut, PhotoFacts())
    assert found.people is not None and found.people.count == 1
    described = with_facets(Description("a space suit", "model", "m", []), found,
                             _settings(tmp_path))  # fmt: skip
    assert described.caption.endswith(", a portrait"), described.caption
    assert "people" in described.keywords and "people:1" in described.facets
    tags_only = with_facets(Description("a space suit", "model", "m", []), found,
                            _settings(tmp_path, facet_people="tags"))  # fmt: skip
    assert "portrait" not in tags_only.caption and "people:1" in tags_only.facets
    nobody = Facets(people=People())
    assert keywords(nobody) == [] and tokens(nobody) == ["people:none"]
    group = Facets(people=People((0.1, 0.1, 0.08, 0.05)))
    assert with_facets(Description("a bench", "model", "m", []), group,
                       _settings(tmp_path)).caption == "a bench, a group of people"  # fmt: skip
    off = compute_facets(_settings(tmp_path, facet_people="off"), astronaut, PhotoFacts())
    assert off.people is None and not [t for t in tokens(off) if t.startswith("people:")]
    assert compute_facets(_settings(tmp_path), None, PhotoFacts()).people is None  # no pixels
    with pytest.raises(QuietError, match="facet_people"):
        _settings(tmp_path, facet_people="sometimes")
    with pytest.raises(QuietError, match="facet_text"):
        _settings(tmp_path, facet_text="yes")


def _task(caption: str = "a rocket", source: str = "model") -> TextTask:
    return TextTask(1, 1, b"a.jpg", caption, source, ("rocket",))


def test_the_words_read_change_caption_and_keywords(tmp_path: Path) -> None:
    read = text_result(_task(), "invoice 2024 to", _settings(tmp_path))
    assert read.caption == f"a rocket, {TEXT_PREFIX} invoice 2024 to"
    assert read.keywords is None  # OCR's stray words stay out of tags/ by default
    assert text_result(_task(), "", _settings(tmp_path)) == TextResult(_task(), "")
    tags = text_result(_task(), "invoice 2024", _settings(tmp_path, facet_text="tags"))
    assert tags.caption is None and tags.keywords == ("rocket", "invoice")  # 4+ letters
    users = text_result(_task("grandma", "user"), "invoice", _settings(tmp_path))
    assert users.caption is None and users.text == "invoice"  # left as the person wrote it
    copy = text_result(_task(read.caption or ""), "invoice 2024 to", _settings(tmp_path))
    assert copy.caption is None  # a copy's description has the words already
    long = text_result(_task(), " ".join(["word"] * 100), _settings(tmp_path))
    assert long.caption is not None and long.caption.count("word") == 40


def _describe(catalog: Catalog, path: bytes, caption: str = "a rocket") -> int:
    catalog.files.upsert(path, 10, 1, path.decode())
    (item,) = [i for i in catalog.queue.queue_items(100) if i.record.path == path]
    description = Description(caption, "model", "test", ["rocket"])
    assert catalog.queue.store_result(item, description, "embedder", b"\0" * 16) is not None
    return item.record.id


def test_the_text_queue_stores_words_caption_and_vector(tmp_path: Path) -> None:
    catalog = Catalog.open(tmp_path / "catalog.sqlite3")
    file_id = _describe(catalog, b"scan.jpg")
    other = _describe(catalog, b"other.jpg")
    assert catalog.texts.text_counts() == (0, 2)
    tasks = {task.file_id: task for task in catalog.texts.text_tasks(10)}
    assert tasks[file_id].caption == "a rocket" and tasks[file_id].keywords == ("rocket",)
    old_seq = list(catalog.reads.vectors_since("embedder", 0))
    new_vector = b"\1" * 16
    read = TextResult(tasks[file_id], "invoice 2024", ("rocket", "invoice"),
                      "a rocket, with the text: invoice 2024", new_vector)  # fmt: skip
    # The other file is described again while it is read: its words are not stored.
    stale = tasks[other]
    _describe_again(catalog, b"other.jpg")
    written = catalog.texts.store_texts("embedder", [read, TextResult(stale, "old words")])
    assert [file_id_ for file_id_, _ in written] == [file_id]
    assert written[0][1] > max(seq for _, seq, _ in old_seq)  # a new seq: the old one is stale
    stored = catalog.reads.description_of(b"scan.jpg")
    assert stored is not None and stored.text == "invoice 2024"
    assert stored.caption == "a rocket, with the text: invoice 2024"
    assert "invoice" in stored.keywords
    assert catalog.reads.with_keywords(["invoice"], "embedder", 10)[0].file_id == file_id
    assert catalog.reads.vectors_of([file_id], "embedder")[file_id] == new_vector
    again = catalog.reads.description_of(b"other.jpg")
    assert again is not None and again.text is None  # still queued, newer generation
    assert [task.file_id for task in catalog.texts.text_tasks(10)] == [other]
    assert catalog.texts.text_counts() == (1, 1)


def _describe_again(catalog: Catalog, path: bytes) -> None:
    catalog.queue.requeue(path)
    (item,) = [i for i in catalog.queue.queue_items(100) if i.record.path == path]
    description = Description("a rocket again", "model", "test", [])
    assert catalog.queue.store_result(item, description, "embedder", b"\2" * 16) is not None


def test_a_catalog_from_before_text_upgrades(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    with sqlite3.connect(path) as db:
        for step in MIGRATIONS[:6]:
            step(db)
        db.execute("PRAGMA user_version = 6")
        db.execute("INSERT INTO files (id, dir, name, size, mtime_ns, state) "
                   "VALUES (1, x'', x'612e6a7067', 1, 1, 'indexed')")  # fmt: skip
        db.execute("INSERT INTO descriptions (file_id, caption, source, captioner, keywords) "
                   "VALUES (1, 'a cat', 'model', 'c', '[\"cat\"]')")  # fmt: skip
    catalog = Catalog.open(path)
    assert catalog.schema_version == SCHEMA_VERSION >= 7
    (task,) = catalog.texts.text_tasks(10)  # every image described before waits to be read
    assert (task.file_id, task.caption, task.keywords) == (1, "a cat", ("cat",))
    stored = catalog.reads.description_of(b"a.jpg")
    assert stored is not None and stored.text is None and json.dumps(stored.keywords)
    with sqlite3.connect(path) as db:  # forgetting the description takes it off the queue
        db.execute("DELETE FROM descriptions WHERE file_id = 1")
    assert catalog.texts.text_tasks(10) == []


def test_a_failing_detector_or_a_bad_file_never_stops_ingest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from semfs.ingest import texts
    from semfs.ml.people import PeopleDetector
    from semfs.store.backing import BackingStore

    def broken(self: PeopleDetector, image: Image.Image) -> People:
        raise ValueError("odd image")

    monkeypatch.setattr(PeopleDetector, "detect", broken)
    image = Image.new("RGB", (64, 64), "white")
    found = compute_facets(_settings(tmp_path), image, PhotoFacts())
    assert found.people is None and found.colours == ("white",)  # the rest goes on
    assert "people not detected" in caplog.text
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "empty.png").write_bytes(b"")
    store = BackingStore(os.fsencode(tmp_path))
    for name in (b"broken.jpg", b"empty.png", b"gone.jpg"):
        task = TextTask(1, 1, name, "a photo", "model", ())
        assert texts._read(store, task, 10**8, 10**8) == ""  # no words, no error
