"""`semfs check`: an fsck for a store. The catalog is checked against itself (SQLite's
own integrity check, then the states of its records), against the store (every image
there has a record, every record a file, sizes and times agree) and against the index
(every vector the newest base claims to hold is in it, unchanged; no half-written
builds), and so is the image index (search by example). Reading only; `semfs.commands.repair`
fixes what this finds.

Work still to do is not a problem: queued images, vectors waiting in the delta and
vectors by another model (made again at the next mount) are reported as notes.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from semfs.catalog.database import Catalog, join_path
from semfs.catalog.reconcile import ReconcileReport, find_differences
from semfs.config import Settings
from semfs.ml.image_features import image_features_name
from semfs.search.bases import StoredVectors, base_files
from semfs.store.backing import BackingStore

EXAMPLES = 5  # paths shown per finding

# (finding kind, what it means, SQL selecting the records concerned: id, dir, name)
RECORD_CHECKS = [
    (
        "indexed-without-caption",
        "marked indexed but have no caption",
        "SELECT id, dir, name FROM files f WHERE state = 'indexed' "
        "AND NOT EXISTS (SELECT 1 FROM descriptions d WHERE d.file_id = f.id)",
    ),
    (
        "indexed-without-vector",
        "marked indexed but have no vector",
        "SELECT id, dir, name FROM files f WHERE state = 'indexed' "
        "AND NOT EXISTS (SELECT 1 FROM vectors v WHERE v.file_id = f.id)",
    ),
    (
        "queued-but-not-in-queue",
        "marked queued but missing from the ingest queue",
        "SELECT id, dir, name FROM files f WHERE state = 'queued' "
        "AND NOT EXISTS (SELECT 1 FROM ingest_queue q WHERE q.file_id = f.id)",
    ),
    (
        "failed-without-reason",
        "marked failed without a reason",
        "SELECT id, dir, name FROM files WHERE state = 'failed' AND coalesce(error, '') = ''",
    ),
    (
        "keywords-out-of-date",
        "have tag rows that differ from their caption's keywords",
        "SELECT f.id, f.dir, f.name FROM files f JOIN descriptions d ON d.file_id = f.id "
        "WHERE (SELECT count(DISTINCT value) FROM json_each(d.keywords)) "
        "!= (SELECT count(*) FROM keywords k WHERE k.file_id = f.id)",
    ),
]
WRONG_SIZE_QUERY = (
    "SELECT f.id, f.dir, f.name FROM vectors v JOIN files f ON f.id = v.file_id "
    "WHERE length(v.vector) != ?"
)
INDEX_KINDS = {
    "half-written-index", "old-index-bases", "index-ahead-of-catalog", "index-unreadable",
    "missing-from-index",
}  # fmt: skip
IMAGE_INDEX_KINDS = {f"image-{kind}" for kind in INDEX_KINDS}
# {table}: an index's vectors table (VECTOR_TABLES), never a value
MAX_SEQ_QUERY = "SELECT coalesce(max(seq), 0) FROM {table}"
SEQ_COUNTER_QUERY = "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = ?"
BASE_VECTORS_QUERY = (
    "SELECT f.dir, f.name, v.file_id, v.vector FROM {table} v "
    "JOIN files f ON f.id = v.file_id WHERE v.embedder = ? AND v.seq <= ?"
)
WAITING_QUERY = (
    "SELECT count(*) FILTER (WHERE embedder = ? AND seq > ?), "
    "count(*) FILTER (WHERE embedder != ?) FROM {table}"
)


@dataclass
class Finding:
    kind: str  # a stable name, e.g. "not-catalogued"
    what: str  # "images in the store ..." — completes "N <what>"
    count: int
    examples: list[str] = field(default_factory=list)


@dataclass
class CheckReport:
    store: str
    mounted_at: str | None = None
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        return not self.findings

    def kinds(self) -> set[str]:
        return {finding.kind for finding in self.findings}

    def add(self, kind: str, what: str, paths: Iterable[bytes | str], count: int = 0) -> None:
        shown = [os.fsdecode(path) for path in paths]
        total = max(count, len(shown))
        if total:
            self.findings.append(Finding(kind, what, total, shown[:EXAMPLES]))

    def text(self) -> str:
        lines = [f"store: {self.store}"]
        if self.mounted_at:
            lines.append(f"mounted at {self.mounted_at}: changes in flight may show below")
        for finding in self.findings:
            lines.append(f"PROBLEM {finding.kind}: {finding.count} {finding.what}")
            lines += [f"    {example!r}" for example in finding.examples]
        lines += [f"note: {note}" for note in self.notes]
        lines.append(
            "consistent" if self.consistent else "problems found: `semfs check --repair` fixes them"
        )
        return "\n".join(lines)

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "consistent": self.consistent}


def check_store(settings: Settings, mounted_at: str | None = None) -> CheckReport:
    report = CheckReport(str(settings.store), mounted_at)
    if not settings.catalog_path.exists():
        report.notes.append("no catalog yet: the store has never been mounted or indexed")
        return report
    if not _database_is_sound(settings.catalog_path, report):
        return report  # nothing else in it can be trusted
    catalog = Catalog.open(settings.catalog_path)
    try:
        _check_records(catalog, report)
        _check_against_store(settings, catalog, report)
        _check_indexes(settings, catalog, report)
    finally:
        catalog.close()
    return report


def _database_is_sound(path: Path, report: CheckReport) -> bool:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            problems = [row[0] for row in db.execute("PRAGMA integrity_check")]
            problems = [] if problems == ["ok"] else problems
            problems += [f"{row[0]} row {row[1]}: broken reference to {row[2]}"
                         for row in db.execute("PRAGMA foreign_key_check")]  # fmt: skip
        finally:
            db.close()
    except sqlite3.DatabaseError as error:
        problems = [str(error)]
    report.add("catalog-damaged", "problems in the catalog database", problems)
    return not problems


def _check_records(catalog: Catalog, report: CheckReport) -> None:
    reader = catalog.open_reader()
    try:
        for kind, what, query in RECORD_CHECKS:
            paths = [join_path(d, n) for _, d, n in reader.execute(query).fetchall()]
            report.add(kind, f"records {what}", paths)
        dimensions = catalog.get_meta("dimensions")
        if dimensions is not None:
            rows = reader.execute(WRONG_SIZE_QUERY, (4 * int(dimensions),)).fetchall()
            report.add("vector-wrong-size", "vectors of the wrong size",
                       [join_path(d, n) for _, d, n in rows])  # fmt: skip
    finally:
        reader.close()
    stats = catalog.stats()
    if stats.queued:
        report.notes.append(f"{stats.queued} images wait to be captioned (at the next mount)")
    if stats.failed:
        report.notes.append(f"{stats.failed} images could not be captioned (see semfs status)")


def _check_against_store(settings: Settings, catalog: Catalog, report: CheckReport) -> None:
    store = BackingStore(os.fsencode(settings.store))
    scanned = ReconcileReport()
    try:
        differences = find_differences(settings, catalog, store, scanned)
    finally:
        store.close()
    report.add("not-catalogued", "images in the store missing from the catalog",
               [path for path, _ in differences.fresh])  # fmt: skip
    report.add("changed-since-catalogued", "images whose size or time changed unrecorded",
               [path for path, _ in differences.changed])  # fmt: skip
    report.add("catalogued-but-gone", "records of images no longer in the store",
               [record.path for record in differences.gone])  # fmt: skip
    report.add("unreadable", "directories of the store that could not be read",
               [path for path, _ in scanned.errors])  # fmt: skip


@dataclass(frozen=True)
class IndexUnderCheck:
    """One of the store's vector indexes: captions (text) or image features."""

    directory: Path
    table: str  # the catalog table of its vectors (VECTOR_TABLES)
    model: str | None  # the model whose vectors it holds; None: nothing embedded yet
    dimensions: int | None
    kind_prefix: str  # "" or "image-": findings keep the text index's names
    noun: str  # "index" or "image index"


def indexes_of(settings: Settings, catalog: Catalog) -> list[IndexUnderCheck]:
    dimensions = catalog.get_meta("dimensions")
    text_dimensions = None if dimensions is None else int(dimensions)
    indexes = [IndexUnderCheck(settings.index_dir, "vectors", catalog.get_meta("embedder"),
                               text_dimensions, "", "index")]  # fmt: skip
    if settings.image_features:
        image_dimensions = settings.image_feature_dimensions
        model = image_features_name(settings.image_features, image_dimensions)
        indexes.append(IndexUnderCheck(settings.image_index_dir, "image_vectors", model,
                                       image_dimensions, "image-", "image index"))  # fmt: skip
    return indexes


def _check_indexes(settings: Settings, catalog: Catalog, report: CheckReport) -> None:
    for index in indexes_of(settings, catalog):
        _check_index(index, catalog, report)
    if settings.image_features and (waiting := catalog.features.feature_counts()[1]):
        report.notes.append(f"{waiting} images wait for their image features (search by example)")


def _check_index(index: IndexUnderCheck, catalog: Catalog, report: CheckReport) -> None:
    prefix, noun, directory = index.kind_prefix, index.noun, index.directory
    leftovers = sorted(directory.glob("*.tmp")) if directory.is_dir() else []
    report.add(f"{prefix}half-written-index", f"{noun} builds left half-written by a crash",
               [path.name for path in leftovers])  # fmt: skip
    if index.model is None or index.dimensions is None:
        return  # nothing was ever embedded
    bases = base_files(directory, index.dimensions) if directory.is_dir() else []
    if len(bases) > 1:
        report.add(f"{prefix}old-index-bases", f"older {noun} bases not cleaned up",
                   [path.name for _, _, path in bases[:-1]])  # fmt: skip
    reader = catalog.open_reader()
    try:
        top = reader.execute(MAX_SEQ_QUERY.format(table=index.table)).fetchone()[0]
        counter = reader.execute(SEQ_COUNTER_QUERY, (index.table,)).fetchone()[0]
        base_seq = 0
        if bases:
            base_seq, items, path = bases[-1]
            if base_seq > max(top, counter):
                report.add(f"{prefix}index-ahead-of-catalog",
                           f"{noun} base built from vectors the catalog no longer numbers",
                           [path.name])  # fmt: skip
            _compare_base(reader, index, path, base_seq, items, report)
        waiting, others = reader.execute(
            WAITING_QUERY.format(table=index.table), (index.model, base_seq, index.model)
        ).fetchone()
    finally:
        reader.close()
    if waiting:
        report.notes.append(f"{waiting} vectors newer than the {noun} base are searched exactly")
    if others:
        report.notes.append(
            f"{others} vectors by another model than {index.model}: made again at the next mount"
        )


def _compare_base(
    reader: sqlite3.Connection,
    index: IndexUnderCheck,
    path: Path,
    base_seq: int,
    items: int,
    report: CheckReport,
) -> None:
    """Every catalog vector no newer than the base must be in it, as stored."""
    assert index.dimensions is not None
    try:
        base = StoredVectors(path, index.dimensions)
    except (OSError, RuntimeError) as error:
        unreadable = [f"{path.name}: {error}"]
        report.add(f"{index.kind_prefix}index-unreadable",
                   f"{index.noun} bases that cannot be loaded", unreadable)  # fmt: skip
        return
    try:
        missing: list[bytes] = []
        live = 0
        rows = reader.execute(BASE_VECTORS_QUERY.format(table=index.table), (index.model, base_seq))
        for directory, name, file_id, blob in rows:
            live += 1
            stored = np.frombuffer(blob, dtype=np.float32)
            held = base.get(file_id)
            if held is None or not np.allclose(held, stored, atol=1e-5):
                missing.append(join_path(directory, name))
        report.add(f"{index.kind_prefix}missing-from-index",
                   f"vectors the {index.noun} base should hold but does not", missing)  # fmt: skip
        if items > live:
            report.notes.append(
                f"{items - live} {index.noun} items belong to images removed or changed since "
                "the build: searches skip them, the next rebuild drops them"
            )
    finally:
        base.close()
