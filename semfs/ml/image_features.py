"""Image features for search by example: what an image looks like, as a vector.

The classifier that captions (EfficientNet-Lite, ImageNet) computes, before its last
layer, 1,280 pooled features that describe the image's content; similar images have
near feature vectors whatever their captions say. They are L2-normalised, so angular
distance ranks them as cosine similarity does, and indexed in their own Annoy index
(`similar/`, `semfs search --image`). The network is the captioner's, loaded once
(`shared_classifier`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from semfs.errors import ModelError
from semfs.ml.lite_classifier import LITE_MODELS, shared_classifier

Rows = np.ndarray[Any, np.dtype[np.float32]]
FEATURE_DIMENSIONS = 1280  # EfficientNet-Lite's head, the same for lite0, lite1 and lite2


class ImageFeatures:
    def __init__(self, model_name: str) -> None:
        if model_name not in LITE_MODELS:
            raise ModelError(
                f"unknown image features model {model_name!r}; known: {sorted(LITE_MODELS)}"
            )
        self._model_name = model_name
        self._classifier = shared_classifier(model_name)
        self.name = f"{model_name}:pooled"  # recorded beside every image vector
        self.dimensions = FEATURE_DIMENSIONS

    def features(self, images: Sequence[Image.Image]) -> Rows:
        """One unit-length row of FEATURE_DIMENSIONS per image."""
        batch = np.stack([self._classifier.pixels(image) for image in images])
        return unit_rows(self._classifier.features(batch))


def unit_rows(features: Rows) -> Rows:
    """The rows scaled to length 1 (a row of zeros stays zeros), as float32."""
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    unit: Rows = (features / np.maximum(norms, 1e-12)).astype(np.float32)
    return unit


def image_features_name(model_name: str) -> str:
    """The name ImageFeatures(model_name) records, without loading it."""
    return f"{model_name}:pooled"
