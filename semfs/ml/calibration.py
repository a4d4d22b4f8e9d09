"""Relevance cuts per captioner/embedder pair: the angular distance above which a result
is not listed.

Calibrated by `scripts/eval` on two sets (docs/evaluation.md): tuxpaint's 430 labelled
photos with their sentences and categories as queries, and 54 photos from scikit-image,
OpenCV and MATE with hand-written queries. For each cut, every query's listing (at most
top_k results within the cut) gets an F1 (right images listed against wrong ones and
missed ones); the mean over each set's queries is summed over the two sets, and the cut
is the loosest one within 2% of the best sum (the sum is flat over a range of cuts, and
an empty listing costs a user more than one extra image). Label captions sit further
from natural queries than real captions, hence cuts above the seed design's 1.0, which
stays for pairs not measured (real captioners).
"""

from __future__ import annotations

from semfs.errors import ModelError
from semfs.ml.captioner import CaptionOptions

SEED_CUT = 1.0
MINILM_L6 = "sentence-transformers:all-MiniLM-L6-v2"
MINILM_L3 = "onnx:paraphrase-MiniLM-L3-v2"
MINILM_L3_INT8 = "onnx:paraphrase-MiniLM-L3-v2-int8"
MPNET = "sentence-transformers:all-mpnet-base-v2"

_CUTS: dict[tuple[str, str], float] = {
    # The default captions: up to five labels and what the first one is (+wide+gloss).
    ("classifier:efficientnet-lite0+wide+gloss", MINILM_L6): 1.125,
    ("classifier:efficientnet-lite0+wide+gloss", MINILM_L3): 1.025,
    ("classifier:efficientnet-lite0+wide+gloss", MINILM_L3_INT8): 1.05,
    ("classifier:efficientnet-lite0+wide+gloss", MPNET): 1.125,
    # The labels alone (+plain, the default before).
    ("classifier:efficientnet-lite0", MINILM_L6): 1.075,
    ("classifier:efficientnet-lite0", MINILM_L3): 1.075,
    ("classifier:efficientnet-lite0", MPNET): 1.05,
}
# Other classifier variants: the default captions' cut for the embedder.
_CLASSIFIER_CUTS = {e: c for (k, e), c in _CUTS.items() if k.endswith("+wide+gloss")}


def captioner_key(spec: str) -> str:
    """The captioner a spec means, with its options spelt out (`classifier` and
    `classifier:efficientnet-lite0` both mean `classifier:efficientnet-lite0+wide+gloss`)."""
    kind, _, argument = spec.partition(":")
    if kind != "classifier":
        return spec
    name, *flags = (argument or "efficientnet-lite0").split("+")
    try:
        suffix = CaptionOptions.parse(flags).suffix
    except ModelError:  # refused elsewhere, with its message
        suffix = "+" + "+".join(flags) if flags else ""
    return f"classifier:{name or 'efficientnet-lite0'}{suffix}"


def default_cut(captioner: str, embedder: str) -> float:
    key = captioner_key(captioner)
    if (key, embedder) in _CUTS:
        return _CUTS[key, embedder]
    if key.startswith("classifier:"):
        return _CLASSIFIER_CUTS.get(embedder, SEED_CUT)
    return SEED_CUT


# Search by example (similar/): the cut on the angular distance of image features,
# calibrated the same way on tuxpaint's categories, each photo as the example
# (scripts/eval_by_example.py, docs/evaluation-by-example.md): lite0's features reduced to
# 256 (the default) and kept whole. Features not measured get no cut.
_EXAMPLE_CUTS = {"efficientnet-lite0:pooled": 1.10, "efficientnet-lite0:svd256": 1.15}
NO_CUT = 2.0  # the largest angular distance


def example_cut(image_features: str) -> float:
    """The cut for the image features named `image_features` (ImageFeatures.name)."""
    return _EXAMPLE_CUTS.get(image_features, NO_CUT)
