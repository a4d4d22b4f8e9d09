"""Tags from labels (semfs/ml/label_tags.py): label names and their everyday kinds from
WordNet, never words of the caption's gloss."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from PIL import Image

from semfs.errors import ModelError
from semfs.ingest.descriptions import model_description
from semfs.ml.captioner import ClassifierCaptioner, LabelCaption, make_captioner
from semfs.ml.imaging import DecodedImage
from semfs.ml.label_tags import CATEGORIES, LabelTags, label_names
from semfs.ml.wordnet import NounSynsets

GOLDEN_RETRIEVER, TABBY, LION, ESPRESSO, GRANNY_SMITH, SPORTS_CAR = 207, 281, 291, 967, 948, 817


@pytest.fixture(scope="module")
def label_tags() -> LabelTags:
    return LabelTags()


def test_a_label_gets_its_name_and_its_everyday_kinds(label_tags: LabelTags) -> None:
    assert label_tags.of_label(GOLDEN_RETRIEVER) == ("golden retriever", "dog", "animal")
    assert label_tags.of_label(TABBY) == ("tabby cat", "cat", "animal")
    assert label_tags.of_label(LION) == ("lion", "big cat", "animal")  # no "cat"
    assert label_tags.of_label(ESPRESSO) == ("espresso", "coffee", "drink")  # not "food"
    assert label_tags.of_label(GRANNY_SMITH) == ("granny smith apple", "apple", "fruit", "food")
    assert label_tags.of_label(SPORTS_CAR) == ("sports car", "car", "vehicle")
    every = {tag for index in range(1000) for tag in label_tags.of_label(index)}
    # Abstract or taxonomic hypernyms are never tags.
    assert not every & {"entity", "object", "whole", "artifact", "organism", "carnivore"}
    assert not any("/" in tag or tag != tag.lower() for tag in every)


def test_label_names_are_names() -> None:
    assert label_names("kite (bird of prey)") == ["kite"]
    assert label_names("cardboard box / carton") == ["cardboard box", "carton"]
    assert label_names("bell or wind chime", "chime") == ["chime"]
    assert label_names("a cat having a striped coat", "tiger_cat") == ["tiger cat"]
    assert label_names("Egyptian Mau") == ["egyptian mau"]


def test_every_category_names_its_wordnet_synset() -> None:
    """Each category's offset is a synset with that word, or one of the few renamed to
    the word people use (label_tags.py says which)."""
    synsets = NounSynsets()
    renamed = {"pig": "swine", "fruit": "edible fruit", "mushroom": "fungus"}
    for offset, tag in CATEGORIES.items():
        words = {word.replace("_", " ").lower() for word in synsets.synset(offset).words}
        assert renamed.get(tag, tag) in words, (offset, tag, words)


def test_without_wordnet_a_label_keeps_its_names(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="wordnet-base"):
        NounSynsets(tmp_path)
    assert LabelTags(tmp_path).of_label(GOLDEN_RETRIEVER) == ("golden retriever",)


def test_only_confident_labels_give_tags(label_tags: LabelTags) -> None:
    tags = label_tags.of_labels([ESPRESSO, LION, TABBY], [0.6, 0.2, 0.03])
    assert tags == ["espresso", "coffee", "drink", "lion", "big cat", "animal"]  # no tabby


@pytest.fixture(scope="module")
def classifier() -> ClassifierCaptioner:
    captioner = make_captioner("classifier")
    assert isinstance(captioner, ClassifierCaptioner)
    return captioner


def test_captions_carry_their_labels_and_no_gloss_word_becomes_a_tag(
    classifier: ClassifierCaptioner, photos: dict[str, Path]
) -> None:
    images = [Image.open(photos[name]).convert("RGB") for name in ("coffee.png", "chelsea.png")]
    coffee, cat = classifier.caption(images)
    assert isinstance(coffee, LabelCaption) and coffee.labels[0] == ESPRESSO
    assert "(a small serving of concentrated coffee)" in coffee  # the gloss stays for search
    assert {"cat", "animal"} <= set(cat.tags)
    copy = pickle.loads(pickle.dumps(coffee))  # as Ray's actors send them
    assert copy == coffee and copy.tags == coffee.tags and copy.labels == coffee.labels
    for caption, name in ((coffee, "coffee.png"), (cat, "chelsea.png")):
        image = DecodedImage(Image.open(photos[name]).convert("RGB"), None, None)
        description = model_description(caption, classifier.name, image)
        assert description.keywords == list(caption.tags)
        assert description.caption == str(caption) and type(description.caption) is str
        gloss = caption[caption.index("(") + 1 : caption.index(")")]
        label_words = {word for tag in caption.tags for word in tag.split()}
        # A word of the gloss is a tag only where a label or its kind says it too.
        assert not (set(gloss.split()) - label_words) & set(description.keywords)
    assert "small serving" not in coffee.tags and "concentrated" not in coffee.tags
    assert {"espresso", "coffee", "drink"} <= set(coffee.tags)


def test_a_description_people_wrote_keeps_its_yake_keywords(
    classifier: ClassifierCaptioner, photos: dict[str, Path]
) -> None:
    (coffee,) = classifier.caption([Image.open(photos["coffee.png"]).convert("RGB")])
    image = DecodedImage(
        Image.open(photos["coffee.png"]).convert("RGB"), "Breakfast in Lisbon", "xmp"
    )
    description = model_description(coffee, classifier.name, image)
    assert "lisbon" in " ".join(description.keywords)
    assert {"espresso", "coffee"} <= set(description.keywords)
    assert model_description("a dog on a sofa", "transformers:x", image).keywords  # YAKE
