"""A store of N indexed images built in minutes instead of captioning N images.

The images are empty `.jpg` files, 1,000 to a directory; the catalog gets, for each, the
files row (with the size and mtime the file really has, so the mount's reconcile finds
it unchanged), a model description and a vector (seq = file id), and the index directory
a base Annoy file built exactly as `VectorIndex._rebuild` builds one (on disk, 25 trees,
one job), named `base-<seq>-<dims>d-<items>n.ann` so that the mount loads it as its base
and nothing waits in the delta.

A label caption's description carries the labels' tags as its keywords, as ingest gives
them (ml/label_tags.py): the relevance cut weighs them (search/relevance.py), and a
store without them would judge every query's things absent and list next to nothing.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from benchlib.vectors import Collection, labels
from semfs.catalog.database import Catalog
from semfs.config import Settings
from semfs.ml.captioner import caption_from_labels
from semfs.ml.label_tags import LabelTags
from semfs.search.bases import base_bytes, base_files
from semfs.search.engine import index_options
from semfs.search.index import VectorIndex

PER_DIRECTORY = 1_000
CAPTIONER = "classifier:efficientnet-lite0"


@dataclass(frozen=True)
class BuiltStore:
    store: Path
    items: int
    files_seconds: float  # creating the image files
    catalog_seconds: float  # writing files, descriptions and vectors rows
    base_seconds: float  # building the base index (the daemon's rebuild)
    base_bytes: int
    catalog_bytes: int
    base_file: str


def build_store(
    root: Path, collection: Collection, embedder: str, engine: str = "auto"
) -> BuiltStore:
    marker = root / "built.json"
    if marker.exists():  # reused with --work: the figures are those of the build
        data = json.loads(marker.read_text())
        built = BuiltStore(**{**data, "store": Path(data["store"])})
        catalog = Settings.load(built.store).catalog_path
        if _vectors_as_built(catalog, embedder, built.items):
            _add_missing_keywords(catalog)
            return built
        print(f"{root}: its vectors were changed since it was built (a mount with another "
              "embedder re-embeds them): building it again", flush=True)  # fmt: skip
        shutil.rmtree(root / "store")
        marker.unlink()
    store = root / "store"
    count = len(collection.vectors)
    started = time.perf_counter()
    stats = _make_files(store, count)
    files_seconds = time.perf_counter() - started
    settings = Settings.load(store)
    started = time.perf_counter()
    _write_catalog(settings.catalog_path, collection, embedder, stats)
    catalog_seconds = time.perf_counter() - started
    if engine != "auto":
        (settings.state_dir / "config.toml").write_text(f'index_engine = "{engine}"\n')
        settings = Settings.load(store)
    started = time.perf_counter()
    base = _build_base(settings, embedder, collection.vectors.shape[1])
    base_seconds = time.perf_counter() - started
    built = BuiltStore(
        store, count, files_seconds, catalog_seconds, base_seconds,
        base_bytes(base), settings.catalog_path.stat().st_size, base.name,
    )  # fmt: skip
    marker.write_text(json.dumps({**asdict(built), "store": str(store)}))
    return built


def _vectors_as_built(catalog: Path, embedder: str, items: int) -> bool:
    """Whether every image still has the vector the build wrote (seq = file id, by
    `embedder`): a re-embedded one gets a new seq and waits in the delta, and the
    bench's recall and latency would be those of another store."""
    db = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True)
    try:
        (kept,) = db.execute(
            "SELECT count(*) FROM vectors WHERE embedder = ? AND seq <= ?", (embedder, items)
        ).fetchone()
    finally:
        db.close()
    return int(kept) == items


def file_path(file_id: int) -> tuple[bytes, bytes]:
    """(directory, name) of image `file_id` (1-based)."""
    index = file_id - 1
    return b"d%04d" % (index // PER_DIRECTORY), b"img%07d.jpg" % index


def _make_files(store: Path, count: int) -> list[tuple[int, int]]:
    """Create the empty images; returns (size, mtime_ns) of each, as stat reports it."""
    stats: list[tuple[int, int]] = []
    for file_id in range(1, count + 1):
        directory, name = file_path(file_id)
        folder = os.path.join(os.fsencode(store), directory)
        if (file_id - 1) % PER_DIRECTORY == 0:
            os.makedirs(folder, exist_ok=True)
        fd = os.open(os.path.join(folder, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            info = os.fstat(fd)
        finally:
            os.close(fd)
        stats.append((info.st_size, info.st_mtime_ns))
    return stats


def _write_catalog(
    path: Path, collection: Collection, embedder: str, stats: list[tuple[int, int]]
) -> None:
    Catalog.open(path).close()  # the schema, by the real migrations
    keywords = label_keywords()
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous = OFF")  # a benchmark store: rebuilt if a crash hits
        db.execute("BEGIN")
        for start in range(0, len(stats), 50_000):
            ids = range(start + 1, min(len(stats), start + 50_000) + 1)
            db.executemany(
                "INSERT INTO files (id, dir, name, size, mtime_ns, state) "
                "VALUES (?, ?, ?, ?, ?, 'indexed')",
                ((i, *file_path(i), *stats[i - 1]) for i in ids),
            )
            db.executemany(
                "INSERT INTO descriptions (file_id, caption, source, captioner, keywords) "
                "VALUES (?, ?, 'model', ?, ?)",
                (
                    (i, collection.captions[i - 1], CAPTIONER, keywords(collection.captions[i - 1]))
                    for i in ids
                ),
            )
            db.executemany(
                "INSERT INTO vectors (seq, file_id, embedder, vector) VALUES (?, ?, ?, ?)",
                ((i, i, embedder, collection.vectors[i - 1].tobytes()) for i in ids),
            )
        meta = {"embedder": embedder, "dimensions": str(collection.vectors.shape[1]),
                "captioner": CAPTIONER}  # fmt: skip
        db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", meta.items())
        db.execute("COMMIT")
    finally:
        db.close()


def _build_base(settings: Settings, embedder: str, dimensions: int) -> Path:
    catalog = Catalog.open(settings.catalog_path)
    try:
        index = VectorIndex(settings.index_dir, embedder, dimensions, index_options(settings))
        index.load(catalog)
        index.rebuild(catalog)
    finally:
        catalog.close()
    (*_, (_, _, path)) = base_files(settings.index_dir, dimensions)
    return path


def annoy_file(built: BuiltStore) -> Path | None:
    """The store's base, if it is an Annoy file."""
    path = Settings.load(built.store).index_dir / built.base_file
    return path if path.suffix == ".ann" else None


def label_keywords() -> Callable[[str], str]:
    """The keywords (JSON) of a label caption ("a photo of a tabby, or a pug"): its
    labels' tags, as ingest stores them; [] for any other caption."""
    tags = LabelTags()
    by_phrase = {caption_from_labels([name]): i for i, name in enumerate(labels())}

    @functools.cache
    def keywords(caption: str) -> str:
        phrases = ["a photo of " + p for p in caption.removeprefix("a photo of ").split(", or ")]
        found = [by_phrase[p] for p in phrases if p in by_phrase]
        return json.dumps(tags.of_labels(found, [1.0] * len(found)))

    return keywords


def _add_missing_keywords(path: Path) -> None:
    """Give a store built before keywords were written its descriptions' keywords."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        if db.execute("SELECT 1 FROM keywords LIMIT 1").fetchone() is not None:
            return
        started = time.perf_counter()
        keywords = label_keywords()
        captions = [c for (c,) in db.execute("SELECT DISTINCT caption FROM descriptions")]
        db.execute("PRAGMA synchronous = OFF")
        db.execute("BEGIN")
        # One pass over the descriptions, each caption's keywords found by its key (an
        # UPDATE per caption would scan every description once per caption).
        db.execute("CREATE TEMP TABLE caption_keywords (caption TEXT PRIMARY KEY, keywords TEXT)")
        db.executemany(
            "INSERT INTO caption_keywords VALUES (?, ?)", ((c, keywords(c)) for c in captions)
        )
        db.execute(
            "UPDATE descriptions SET keywords = (SELECT k.keywords FROM caption_keywords k "
            "WHERE k.caption = descriptions.caption)"
        )
        db.execute("COMMIT")
        print(f"bench store: keywords added to {len(captions):,} captions' descriptions "
              f"in {time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
    finally:
        db.close()
