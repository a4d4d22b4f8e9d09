"""A store keeps the embedder its vectors were made with when none is set: neither a new
default embedder nor dropping a one-off --embedder re-embeds every caption of a store."""

from __future__ import annotations

from pathlib import Path

from semfs.catalog.database import Catalog, Description
from semfs.config import Settings, embedder_of_vectors
from semfs.ml.calibration import default_cut

L6 = "sentence-transformers:all-MiniLM-L6-v2"  # the default
L3 = "onnx:paraphrase-MiniLM-L3-v2"


def describe(store: Path, embedder: str, names: list[bytes]) -> None:
    catalog = Catalog.open(Settings.load(store).catalog_path)
    try:
        for name in names:
            catalog.files.upsert(name, 1, 1, name.hex())
        for item in catalog.queue.queue_items(len(names)):
            description = Description("a photo of an espresso", "model", "t", [])
            catalog.queue.store_result(item, description, embedder, b"\0" * 8)
    finally:
        catalog.close()


def test_a_new_store_gets_the_default_embedder(tmp_path: Path) -> None:
    settings, sources = Settings.load_with_sources(tmp_path)
    assert (settings.embedder, sources["embedder"]) == (L6, "default")
    Catalog.open(settings.catalog_path).close()  # a catalog, no vector yet
    assert embedder_of_vectors(settings.catalog_path) is None
    assert Settings.load(tmp_path).embedder == L6


def test_a_store_keeps_its_vectors_embedder_unless_one_is_set(tmp_path: Path) -> None:
    describe(tmp_path, L3, [b"a.jpg", b"b.jpg"])  # indexed once with --embedder L3
    settings, sources = Settings.load_with_sources(tmp_path)
    assert (settings.embedder, sources["embedder"]) == (L3, "store")
    assert default_cut(settings.captioner, settings.embedder) == 1.025  # L3's own cut
    # Asked for: the flag, the profile and config.toml each win (and re-embed).
    assert Settings.load(tmp_path, embedder=L6).embedder == L6
    low = Settings.load_with_sources(tmp_path, profile="low-memory")
    assert (low[0].embedder, low[1]["embedder"]) == (f"{L3}-int8", "profile")
    (tmp_path / ".semfs" / "config.toml").write_text(f'embedder = "{L6}"\n')
    settings, sources = Settings.load_with_sources(tmp_path)
    assert (settings.embedder, sources["embedder"]) == (L6, "config.toml")


def test_the_newest_vector_names_the_embedder_kept(tmp_path: Path) -> None:
    # A switch half done (the flag given once, then not): the store goes on with the new one.
    describe(tmp_path, L3, [b"a.jpg"])
    describe(tmp_path, L6, [b"b.jpg"])
    assert Settings.load_with_sources(tmp_path)[1]["embedder"] == "store"
    assert Settings.load(tmp_path).embedder == L6


def test_an_unreadable_catalog_leaves_the_default(tmp_path: Path) -> None:
    catalog = tmp_path / ".semfs" / "catalog.sqlite3"
    catalog.parent.mkdir()
    catalog.write_bytes(b"not a database" * 100)
    assert embedder_of_vectors(catalog) is None
    assert Settings.load_with_sources(tmp_path)[0].embedder == L6
