"""The default models run with onnxruntime from checked, cached exports of their torch
weights: all-MiniLM-L6-v2 and the classifier captioner."""

from __future__ import annotations

import importlib.resources
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semfs.config import Settings
from semfs.errors import QuietError
from semfs.ml import embedder as embedder_module
from semfs.ml import lite_classifier, onnx_export
from semfs.ml.captioner import CaptionOptions, ClassifierCaptioner
from semfs.ml.embedder import (
    PACKAGED_MINILM,
    OnnxEmbedder,
    SentenceTransformerEmbedder,
    _packaged_minilm_dir,
    make_embedder,
)
from semfs.ml.image_features import ImageFeatures
from semfs.ml.onnx_bert import sentence_transformer_encoder

TEXTS = [
    "x",
    "a photo of an espresso, or a cup",
    "snow on mountains",
    "a much longer sentence about a red bicycle leaning on a brick wall in the rain " * 8,
    "日本語のテキスト and emoji 🐈",
]


@pytest.fixture(scope="module")
def torch_minilm() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(str(_packaged_minilm_dir()), name=PACKAGED_MINILM)


def test_default_embedder_is_onnx_and_equals_torch(torch_minilm: SentenceTransformerEmbedder):
    onnx = make_embedder("sentence-transformers:all-MiniLM-L6-v2")
    assert isinstance(onnx, OnnxEmbedder)
    assert onnx.name == torch_minilm.name == "sentence-transformers:all-MiniLM-L6-v2"
    expected = torch_minilm.embed(TEXTS)
    batch = onnx.embed(TEXTS)  # padded to the longest text
    one_by_one = np.stack([onnx.embed([text])[0] for text in TEXTS])
    assert batch.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    assert (batch * expected).sum(axis=1).min() > 0.9999
    assert (one_by_one * expected).sum(axis=1).min() > 0.9999


def test_export_is_made_once_and_a_damaged_one_is_made_again(tmp_path: Path):
    model_dir = _packaged_minilm_dir()
    encoder = sentence_transformer_encoder(model_dir, PACKAGED_MINILM, tmp_path)
    (exported,) = tmp_path.iterdir()  # no temporary file left beside it
    assert exported.name.startswith(f"{PACKAGED_MINILM}-") and exported.suffix == ".onnx"
    first = exported.stat().st_mtime_ns
    reference = encoder.encode(["a cat"])

    sentence_transformer_encoder(model_dir, PACKAGED_MINILM, tmp_path)
    assert exported.stat().st_mtime_ns == first  # opened, not exported again

    exported.write_bytes(b"not an onnx model")
    again = sentence_transformer_encoder(model_dir, PACKAGED_MINILM, tmp_path)
    assert exported.stat().st_size > 1_000_000
    assert float((again.encode(["a cat"]) * reference).sum()) > 0.9999


def test_without_an_export_the_default_runs_on_torch(monkeypatch: pytest.MonkeyPatch):
    def cannot_export(*_: object) -> None:
        raise RuntimeError("no exporter here")

    monkeypatch.setattr(embedder_module, "sentence_transformer_encoder", cannot_export)
    fallback = make_embedder("sentence-transformers:all-MiniLM-L6-v2")
    assert isinstance(fallback, SentenceTransformerEmbedder)
    assert fallback.name == "sentence-transformers:all-MiniLM-L6-v2"  # no re-embedding


def _sample_photos() -> list[Image.Image]:
    data = Path(str(importlib.resources.files("skimage") / "data"))
    names = ["chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "horse.png"]
    return [Image.open(data / name).convert("RGB") for name in names]


def test_classifier_on_onnx_captions_as_torch_does(monkeypatch: pytest.MonkeyPatch):
    photos = _sample_photos()
    onnx = ClassifierCaptioner("efficientnet-lite0")
    onnx_probabilities = onnx.probabilities(photos)

    def cannot_export(*_: object) -> None:
        raise RuntimeError("no exporter here")

    monkeypatch.setattr(lite_classifier, "cached_session", cannot_export)
    monkeypatch.setattr(lite_classifier, "_shared", {})  # not the ONNX one loaded above
    torch_captioner = ClassifierCaptioner("efficientnet-lite0")  # the fallback
    assert np.abs(torch_captioner.probabilities(photos) - onnx_probabilities).max() < 1e-4
    assert torch_captioner.caption(photos) == onnx.caption(photos)
    assert "espresso" in onnx.caption(photos)[1]
    onnx_features = ImageFeatures("efficientnet-lite0").features(photos)
    monkeypatch.setattr(lite_classifier, "_shared", {})
    torch_features = ImageFeatures("efficientnet-lite0").features(photos)
    assert onnx_features.shape == (5, 256)
    assert np.abs(torch_features - onnx_features).max() < 1e-4


def test_captions_come_with_the_whole_images_features_from_one_pass():
    photos = _sample_photos()
    image_features = ImageFeatures("efficientnet-lite0")
    expected = image_features.features(photos)
    for spec in ("efficientnet-lite0", "efficientnet-lite0+wide+crops"):
        name, *flags = spec.split("+")
        captioner = ClassifierCaptioner(name, CaptionOptions.parse(flags))
        captions, pooled = captioner.caption_with_features(photos)
        assert captions == captioner.caption(photos)
        assert pooled.shape == (5, 1280)  # as the network gives them
        features = image_features.from_pooled(pooled)
        assert features.shape == (5, 256) and features.dtype == np.float32
        assert (features * expected).sum(axis=1).min() > 0.9999  # not a crop's
    # Kept whole (image_feature_dimensions = 1280): the same images, as before the
    # reduction; reducing those unit rows gives what the reduced model computes.
    whole = ImageFeatures("efficientnet-lite0", 1280)
    assert whole.name == "efficientnet-lite0:pooled"
    unreduced = whole.features(photos)
    assert unreduced.shape == (5, 1280)
    assert (image_features.from_pooled(unreduced) * expected).sum(axis=1).min() > 0.9999


def test_loading_an_export_removes_exports_unused_for_a_month(tmp_path: Path):
    """A reinstalled weights package gets a new export; the old one must not stay for
    ever, nor go while another installation may still load it."""
    day = 86400.0
    loaded, stale, recent, unrelated = (
        tmp_path / name for name in ("new.onnx", "old-key.onnx", "other-install.onnx", "notes.txt")
    )
    for file, age_days in ((loaded, 40), (stale, 31), (recent, 29), (unrelated, 400)):
        file.write_bytes(b"x")
        then = time.time() - age_days * day
        os.utime(file, (then, then))
    written = loaded.stat().st_mtime

    onnx_export.mark_used(loaded)

    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "new.onnx", "notes.txt", "other-install.onnx"
    ]  # fmt: skip
    assert loaded.stat().st_atime > time.time() - day  # marked as used now ...
    assert loaded.stat().st_mtime == written  # ... and its time of writing kept


def test_the_features_projection_is_orthonormal_signed_and_cached(tmp_path: Path, monkeypatch):
    """The reduction (feature_projection) depends only on the weights: orthonormal
    directions, each with its largest component positive; computed once, then read from
    the cache without torch; a damaged cache file is computed again."""
    from semfs.ml import feature_projection

    weights = lite_classifier._weights_file(
        "efficientnet-lite0", lite_classifier.LITE_MODELS["efficientnet-lite0"]
    )
    projection = feature_projection.cached_projection("efficientnet-lite0", weights, tmp_path)
    assert projection.shape == (1280, 256) and projection.dtype == np.float32
    assert np.allclose(projection.T @ projection, np.eye(256), atol=1e-5)
    largest = np.abs(projection).argmax(axis=0)
    assert (projection[largest, np.arange(256)] > 0).all()
    (cached,) = tmp_path.iterdir()
    assert cached.name.endswith("-svd256.npy")

    def no_torch(weights: Path) -> np.ndarray:
        raise AssertionError("the cached projection must be read, not computed")

    monkeypatch.setattr(feature_projection, "_last_layer", no_torch)
    again = feature_projection.cached_projection("efficientnet-lite0", weights, tmp_path)
    assert np.array_equal(again, projection)
    monkeypatch.undo()
    cached.write_bytes(b"not an array")
    repaired = feature_projection.cached_projection("efficientnet-lite0", weights, tmp_path)
    assert np.array_equal(repaired, projection)


def test_onnx_embedders_embed_from_several_threads_at_once() -> None:
    """A query is not queued behind ingest's batch of captions: the ONNX embedders have
    no lock, and concurrent calls give the vectors a lone call gives."""
    from concurrent.futures import ThreadPoolExecutor

    embedder = make_embedder("onnx:paraphrase-MiniLM-L3-v2")
    batches = [[f"a photo of {n} cats on a red sofa", "snow"] for n in range(40)]
    batches += [[f"query {n}"] for n in range(40)]
    alone = [embedder.embed(batch) for batch in batches]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(embedder.embed, batches))
    for one, other in zip(alone, together, strict=True):
        np.testing.assert_allclose(one, other, atol=1e-6)


def test_queries_can_be_encoded_by_an_int8_copy_of_the_embedder(tmp_path: Path) -> None:
    """query_encoder = "int8": the searches' query vectors come from an int8 copy of the
    ONNX model (made once, per channel, beside its export), close to the model's but not
    the same; the model itself still embeds the captions. Models already int8 keep
    their own."""
    from semfs.catalog.database import Catalog
    from semfs.search.engine import Engine

    store = tmp_path / "store"
    store.mkdir()
    settings = Settings.load(store, query_encoder="int8")
    catalog = Catalog.open(settings.catalog_path)
    try:
        engine = Engine(settings, catalog)
        engine.load()
        assert engine.text.searcher._queries is not None
        queries = [engine.text.searcher._queries.vector(text) for text in TEXTS]
        models = engine.embedder.embed(TEXTS)
    finally:
        catalog.close()
    cosines = np.sum(np.stack(queries) * models, axis=1)
    assert cosines.min() > 0.95 and cosines.max() < 0.99999
    assert isinstance(engine.embedder, OnnxEmbedder)
    assert embedder_module.query_embedder(engine.embedder, "float") is engine.embedder
    assert list((onnx_export.user_cache_dir() / "onnx").glob(f"{PACKAGED_MINILM}-*-int8-channel-*"))
    small = make_embedder("onnx:paraphrase-MiniLM-L3-v2-int8")
    assert embedder_module.query_embedder(small, "int8") is small
    with pytest.raises(QuietError, match="query_encoder = 'int4': it is one of float, int8"):
        Settings(store=store, query_encoder="int4")


def test_without_an_int8_copy_queries_are_encoded_by_the_model(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def cannot_quantise(*_: object, **__: object) -> None:
        raise RuntimeError("no quantiser here")

    monkeypatch.setattr(embedder_module, "quantized", cannot_quantise)
    model = make_embedder("onnx:paraphrase-MiniLM-L3-v2")
    assert embedder_module.query_embedder(model, "int8") is model
    assert "no int8 copy (no quantiser here)" in caplog.text
