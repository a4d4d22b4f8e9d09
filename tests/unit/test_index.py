"""The vector index with the catalog: delta, rebuild + swap, tombstones, crash leftovers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from semfs.catalog.database import Catalog, Description
from semfs.search import bases
from semfs.search.bases import ExactBase, IvfBase, StoredVectors
from semfs.search.index import IndexOptions, VectorIndex
from semfs.search.searcher import Searcher

DIMS = 16
EMBEDDER = "test:random-unit-vectors"  # the index is model-agnostic: vectors are the input


class FixedQueries:
    """Queries given as vectors directly (this tests the index, not a model)."""

    def __init__(self) -> None:
        self.vectors: dict[str, np.ndarray] = {}

    def vector(self, text: str) -> np.ndarray:
        return self.vectors[text]


def unit(rng: np.random.Generator) -> np.ndarray:
    vector = rng.normal(size=DIMS).astype(np.float32)
    return vector / np.linalg.norm(vector)


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog.open(tmp_path / "catalog.sqlite3")


def ingest(catalog: Catalog, index: VectorIndex, path: bytes, vector: np.ndarray) -> int:
    catalog.files.upsert(path, 1, 1, path.hex())
    (item,) = [i for i in catalog.queue.queue_items(100) if i.record.path == path]
    description = Description(path.decode(), "model", "test", [])
    seq = catalog.queue.store_result(item, description, EMBEDDER, vector.tobytes())
    assert seq is not None
    index.add(item.record.id, seq, vector)
    return item.record.id


# A small base is searched exactly, a large one with FAISS IVF or Annoy: all must keep the
# contract. (10 trees; IVF scans every list of such small bases: nprobe 16 >= n / 8.)
ENGINES = {
    "annoy": IndexOptions(engine="annoy", trees=10, exact_below=0),
    "exact": IndexOptions(engine="annoy", trees=10),
    "ivf": IndexOptions(engine="ivf"),
}
BASE_SEARCH = pytest.mark.parametrize("engine", list(ENGINES))
SUFFIX = {"annoy": "ann", "exact": "ann", "ivf": "ivf"}


@BASE_SEARCH
def test_delta_then_rebuilt_base_answer_the_same_with_tombstones(
    catalog: Catalog, tmp_path: Path, engine: str
) -> None:
    rng = np.random.default_rng(7)
    index = VectorIndex(tmp_path / "index", EMBEDDER, DIMS, ENGINES[engine], rebuild_threshold=50)
    index.load(catalog)
    vectors = {f"img{i}.jpg".encode(): unit(rng) for i in range(60)}
    for path, vector in vectors.items():
        ingest(catalog, index, path, vector)
    queries = FixedQueries()
    searcher = Searcher(catalog.reads, index, queries, EMBEDDER)  # type: ignore[arg-type]
    queries.vectors["q"] = vectors[b"img3.jpg"]
    before = searcher.search("q", k=5)
    assert before[0].path == b"img3.jpg" and before[0].distance < 1e-3

    assert index.needs_rebuild(catalog)
    assert index.rebuild(catalog)
    assert len(list((tmp_path / "index").glob(f"base-*-16d-60n.{SUFFIX[engine]}"))) == 1
    assert index.base_kind == engine
    after = searcher.search("q", k=5)
    assert [h.path for h in after] == [h.path for h in before]

    # Tombstones: a removed file and a changed one leave the results; a re-described
    # file is found by its new vector (in the delta), not its old one (in the base).
    catalog.files.remove(b"img3.jpg")
    catalog.files.upsert(b"img4.jpg", 2, 2, "new content")
    queries.vectors["q4"] = vectors[b"img4.jpg"]
    assert all(hit.path not in (b"img3.jpg",) for hit in searcher.search("q", k=60))
    assert all(hit.path != b"img4.jpg" for hit in searcher.search("q4", k=60))
    new_vector = unit(rng)
    (item,) = [i for i in catalog.queue.queue_items(10) if i.record.path == b"img4.jpg"]
    seq = catalog.queue.store_result(
        item, Description("x", "model", "t", []), EMBEDDER, new_vector.tobytes()
    )
    assert seq is not None
    index.add(item.record.id, seq, new_vector)
    queries.vectors["new"] = new_vector
    assert searcher.search("new", k=1)[0].path == b"img4.jpg"
    found = [hit.path for hit in searcher.search("q4", k=60)]
    assert found.count(b"img4.jpg") == 1  # once, by the new vector


def test_restart_reloads_base_and_delta_and_removes_a_half_built_file(
    catalog: Catalog, tmp_path: Path
) -> None:
    rng = np.random.default_rng(1)
    directory = tmp_path / "index"
    index = VectorIndex(directory, EMBEDDER, DIMS, IndexOptions(trees=5))
    index.load(catalog)
    first = [ingest(catalog, index, f"a{i}.jpg".encode(), unit(rng)) for i in range(10)]
    index.rebuild(catalog)
    later = unit(rng)
    ingest(catalog, index, b"later.jpg", later)
    (directory / "base-99.tmp").write_bytes(b"crashed mid-build")

    reopened = VectorIndex(directory, EMBEDDER, DIMS, IndexOptions(trees=5))
    reopened.load(catalog)
    assert not (directory / "base-99.tmp").exists()
    assert reopened.base_seq == max(first)  # seq == id here: one vector per file, in order
    queries = FixedQueries()
    queries.vectors["later"] = later
    searcher = Searcher(catalog.reads, reopened, queries, EMBEDDER)  # type: ignore[arg-type]
    assert searcher.search("later", k=1)[0].path == b"later.jpg"
    assert len(searcher.search("later", k=100)) == 11


def test_a_result_stored_for_an_outdated_queue_entry_is_dropped(catalog: Catalog) -> None:
    catalog.files.upsert(b"a.jpg", 1, 1, "v1")
    (stale,) = catalog.queue.queue_items(1)
    catalog.files.upsert(b"a.jpg", 2, 2, "v2")  # changed while being described
    description = Description("old", "model", "t", [])
    assert catalog.queue.store_result(stale, description, EMBEDDER, b"\0" * 4 * DIMS) is None
    assert catalog.stats().queued == 1


@BASE_SEARCH
def test_deleted_neighbours_do_not_hide_the_next_best_behind_a_far_delta_vector(
    catalog: Catalog, tmp_path: Path, engine: str
) -> None:
    rng = np.random.default_rng(3)
    index = VectorIndex(tmp_path / "index", EMBEDDER, DIMS, ENGINES[engine])
    index.load(catalog)
    centre = unit(rng)
    near = [centre + 0.05 * unit(rng) for _ in range(80)]
    paths = [f"near{i:02d}.jpg".encode() for i in range(80)]
    for path, vector in zip(paths, near, strict=True):
        ingest(catalog, index, path, (vector / np.linalg.norm(vector)).astype(np.float32))
    index.rebuild(catalog)
    queries = FixedQueries()
    queries.vectors["q"] = centre
    searcher = Searcher(catalog.reads, index, queries, EMBEDDER)  # type: ignore[arg-type]
    ranked = [hit.path for hit in searcher.search("q", k=10)]
    for path in ranked[:8] + [p for p in paths if p not in ranked][:52]:
        catalog.files.remove(path)  # 60 of the nearest go; the base still holds them
    ingest(catalog, index, b"far.jpg", -centre)  # one unrelated vector in the delta
    hits = searcher.search("q", k=10)
    assert len(hits) == 10 and b"far.jpg" not in [hit.path for hit in hits][:10]
    assert all(catalog.files.get(hit.path) is not None for hit in hits)


def test_reembedding_skips_files_removed_or_recaptioned_meanwhile(catalog: Catalog) -> None:
    for name in (b"a.jpg", b"b.jpg", b"c.jpg"):
        catalog.files.upsert(name, 1, 1, name.hex())
    for item in catalog.queue.queue_items(10):
        description = Description(f"caption of {item.record.path!r}", "model", "t", [])
        catalog.queue.store_result(item, description, "old-model", b"\0" * 8)
    stale = catalog.queue.captions_to_embed("new-model", 10)
    assert len(stale) == 3
    catalog.files.remove(b"a.jpg")
    catalog.files.upsert(b"b.jpg", 2, 2, "changed")  # its description goes with the old content
    rows = [(file_id, caption, b"\1" * 8) for file_id, caption in stale]
    assert catalog.queue.store_vectors("new-model", rows) == 1  # only c.jpg
    assert catalog.queue.captions_to_embed("new-model", 10) == []


def test_a_small_base_is_searched_exactly_in_the_annoy_file(
    catalog: Catalog, tmp_path: Path
) -> None:
    rng = np.random.default_rng(11)
    directory = tmp_path / "index"
    index = VectorIndex(directory, EMBEDDER, DIMS, IndexOptions(trees=2))
    index.load(catalog)
    vectors = {ingest(catalog, index, f"i{i}.jpg".encode(), unit(rng)): None for i in range(300)}
    index.rebuild(catalog)
    ids = sorted(vectors)
    matrix = np.stack([np.frombuffer(blob, dtype=np.float32) for _, _, blob in
                       catalog.reads.vectors_since(EMBEDDER, 0)])  # fmt: skip

    from annoy import AnnoyIndex

    (path,) = directory.glob("base-*.ann")
    annoy = AnnoyIndex(DIMS, "angular")
    annoy.load(str(path))
    exact = ExactBase(path, annoy, DIMS)
    for probe in (unit(rng) for _ in range(5)):
        truth = np.argsort(np.sqrt(np.maximum(0, 2 - 2 * matrix @ probe)))[:20]
        found = exact.search(probe, 20, seq=7)
        assert [c.file_id for c in found] == [ids[i] for i in truth]  # exact: all 20, in order
        assert all(c.from_base and c.seq == 7 for c in found)
        # The same distances Annoy reports for the same items.
        annoy_ids, annoy_distances = annoy.get_nns_by_vector(
            probe.tolist(), 3, search_k=10_000, include_distances=True
        )
        assert annoy_ids == [c.file_id for c in found[:3]]
        assert np.allclose(annoy_distances, [c.distance for c in found[:3]], atol=1e-4)
    assert len(exact.search(unit(rng), 1_000, seq=7)) == 300  # id 0, never added, is absent

    annoy_only = VectorIndex(directory, EMBEDDER, DIMS, IndexOptions(trees=2, exact_below=0))
    annoy_only.load(catalog, tidy=False)
    probe = unit(rng)
    assert [c.file_id for c in index.search(probe, 5).base] == [
        c.file_id for c in annoy_only.search(probe, 5).base
    ]


def test_a_large_base_is_faiss_ivf_by_default_found_well_and_let_go_of_after_a_search(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`auto` builds IVF from `ivf_from` vectors; a search scans only `nprobe` lists, with
    exact distances, and the pages it touched leave the process's resident memory."""
    rng = np.random.default_rng(5)
    monkeypatch.setattr(bases, "SHARD", 700)  # built in 5 shards, merged into one base
    options = IndexOptions(ivf_from=1_000, nprobe=8)
    index = VectorIndex(tmp_path / "index", EMBEDDER, DIMS, options)
    index.load(catalog)
    centres = np.stack([unit(rng) for _ in range(40)])
    clustered = centres[rng.integers(0, 40, 3_000)] + 0.3 * rng.normal(size=(3_000, DIMS))
    clustered = (clustered / np.linalg.norm(clustered, axis=1, keepdims=True)).astype(np.float32)
    ids = [ingest(catalog, index, f"c{i}.jpg".encode(), v) for i, v in enumerate(clustered)]
    index.rebuild(catalog)
    assert index.base_kind == "ivf"
    (path,) = (tmp_path / "index").iterdir()  # the shards are gone, nothing half-built
    assert path.name == "base-3000-16d-3000n.ivf" and path.is_dir()
    assert sorted(part.name for part in path.iterdir()) == ["index", "lists.ivfdata"]
    assert options.lists_for(3_000) == 219  # 4 sqrt(n): nprobe 8 scans under 4 % of them
    assert options.nprobe_for(219) == 8 and IndexOptions().nprobe_for(4_000) == 32
    stored = StoredVectors(path, DIMS)  # every vector of every shard, as given
    assert all(np.array_equal(stored.get(i), v) for i, v in zip(ids, clustered, strict=True))
    assert stored.get(max(ids) + 1) is None
    stored.close()

    found_share = []
    for centre in centres[:20]:
        probe = centre + 0.3 * rng.normal(size=DIMS).astype(np.float32)
        probe /= np.linalg.norm(probe)
        shortlist = index.search(probe, 10)
        cosines = clustered @ probe
        truth = {ids[i] for i in np.argsort(-cosines)[:10]}
        found_share.append(len(truth & {c.file_id for c in shortlist.base}) / 10)
        for candidate in shortlist.base:  # exact distances: the relevance cut relies on them
            exact = np.sqrt(max(0.0, 2 - 2 * cosines[ids.index(candidate.file_id)]))
            assert candidate.distance == pytest.approx(exact, abs=1e-5)
    assert 0.5 <= float(np.mean(found_share)) < 1.0  # approximate, but far from blind (4 %)

    # The mapping of the file is there, and none of its pages stay resident after a search.
    base = index._base
    assert isinstance(base, IvfBase) and len(base._pages) > 0
    index.search(unit(rng), 10)
    regions = base._pages._regions
    assert regions and _resident_kib(regions) == 0


def _resident_kib(regions: list[tuple[int, int]]) -> int:
    """Resident KiB of this process's mappings inside `regions` (/proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split(" ", 1)[0]
        if "-" in head and len(line.split()) >= 5:
            start, end = (int(part, 16) for part in head.split("-"))
            inside = any(low <= start and end <= high for low, high in regions)
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


def test_the_catalog_check_of_a_shortlist_looks_ids_up_instead_of_scanning(
    catalog: Catalog,
) -> None:
    """At 100 k images a plan that scans the embedder's vectors cost 376 ms a search."""
    from semfs.catalog.reads import HITS_QUERY
    from semfs.catalog.records import VECTOR_TABLES

    for table in VECTOR_TABLES:
        sql = "EXPLAIN QUERY PLAN " + HITS_QUERY.format(table=table, marks="?,?,?")
        plan = [row[3] for row in catalog._connection._db.execute(sql, (1, 2, 3, EMBEDDER))]
        assert not any("vectors_by_embedder" in step for step in plan), plan
        assert any("SEARCH v USING INDEX" in step and "file_id=?" in step for step in plan), plan


def test_dead_vectors_are_counted_only_when_asked(catalog: Catalog, tmp_path: Path) -> None:
    """The count of a base's dead vectors reads the catalog (80-100 ms at 1 M): ingest
    asks for it every few seconds, not after each batch; the delta's size always counts."""
    rng = np.random.default_rng(3)
    index = VectorIndex(tmp_path / "index", EMBEDDER, DIMS, ENGINES["exact"], rebuild_threshold=8)
    index.load(catalog)
    paths = [f"img{i}.jpg".encode() for i in range(20)]
    for path in paths:
        ingest(catalog, index, path, unit(rng))
    assert index.needs_rebuild(catalog, count_dead=False)  # the delta is full: no count
    assert index.rebuild(catalog)
    for path in paths[:10]:  # half the base dead
        catalog.files.remove(path)
    assert not index.needs_rebuild(catalog, count_dead=False)
    assert index.needs_rebuild(catalog)


@BASE_SEARCH
def test_duplicates_rank_in_file_order_from_delta_base_and_both(
    catalog: Catalog, tmp_path: Path, engine: str
) -> None:
    """Copies of one photo tie in distance; a listing computed again must rank them the
    same way, whether they come from the delta, the base, or both at once."""
    rng = np.random.default_rng(21)
    index = VectorIndex(tmp_path / "index", EMBEDDER, DIMS, ENGINES[engine], rebuild_threshold=50)
    index.load(catalog)
    photo = unit(rng)
    copies: list[int] = []
    for i in range(60):  # copies among other photos, so the index sees them scattered
        if i % 3 == 0:
            copies.append(ingest(catalog, index, f"copy{i}.jpg".encode(), photo))
        else:
            ingest(catalog, index, f"other{i}.jpg".encode(), unit(rng))
    queries = FixedQueries()
    queries.vectors["q"] = photo
    searcher = Searcher(catalog.reads, index, queries, EMBEDDER)  # type: ignore[arg-type]

    def ranked() -> list[int]:
        return [hit.file_id for hit in searcher.search("q", k=len(copies) + 5)]

    from_delta = ranked()
    assert from_delta[: len(copies)] == sorted(copies)
    assert index.rebuild(catalog)
    assert ranked() == from_delta  # the base now: same ranks
    for i in range(60, 70):  # more copies, in the delta beside the base's
        copies.append(ingest(catalog, index, f"copy{i}.jpg".encode(), photo))
    both = ranked()
    assert both[: len(copies)] == sorted(copies)
    assert ranked() == both
