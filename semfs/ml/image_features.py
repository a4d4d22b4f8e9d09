"""Image features for search by example: what an image looks like, as a vector.

The classifier that captions (EfficientNet-Lite, ImageNet) computes, before its last
layer, 1,280 pooled features that describe the image's content; similar images have
near feature vectors whatever their captions say. They are reduced to 256 by default
(feature_projection: a fifth of the disk, at little cost in quality; the setting
`image_feature_dimensions`, 1,280 to keep them whole), L2-normalised, so
angular distance ranks them as cosine similarity does, and indexed in their own Annoy
index (`similar/`, `semfs search --image`). The network is the captioner's, loaded once
(`shared_classifier`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from semfs.errors import ModelError
from semfs.ml.feature_projection import POOLED_DIMENSIONS, REDUCED_DIMENSIONS
from semfs.ml.lite_classifier import LITE_MODELS, shared_classifier

Rows = np.ndarray[Any, np.dtype[np.float32]]


class ImageFeatures:
    def __init__(self, model_name: str, dimensions: int = REDUCED_DIMENSIONS) -> None:
        if model_name not in LITE_MODELS:
            raise ModelError(
                f"unknown image features model {model_name!r}; known: {sorted(LITE_MODELS)}"
            )
        check_dimensions(dimensions)
        self._classifier = shared_classifier(model_name)
        self.name = image_features_name(model_name, dimensions)  # beside every image vector
        self.dimensions = dimensions

    def features(self, images: Sequence[Image.Image]) -> Rows:
        """One unit-length row of `dimensions` per image."""
        batch = np.stack([self._classifier.pixels(image) for image in images])
        return self.from_pooled(self._classifier.features(batch))

    def from_pooled(self, pooled: Rows) -> Rows:
        """The stored rows for the network's pooled features (from a captioner's pass),
        or for unit rows of them (stored unreduced): the reduction ignores length."""
        if self.dimensions == POOLED_DIMENSIONS:
            return unit_rows(pooled)
        return unit_rows(project(pooled, self._classifier.projection(self.dimensions)))


def project(rows: Rows, projection: Rows) -> Rows:
    """rows @ projection without BLAS. numpy's OpenBLAS hands a matrix product this size
    to its second thread on 2 cores, and that thread then spins waiting for more work:
    12 ms of CPU a batch of 8 instead of 0.2 (measured 2026-12-07), and through ingest
    ~12 ms an image of the daemon's CPU (52 against 38 with one BLAS thread). einsum's
    own loop takes 0.6 ms a batch, on the calling thread."""
    product: Rows = np.einsum("ij,jk->ik", rows, projection)
    return product


def unit_rows(features: Rows) -> Rows:
    """The rows scaled to length 1 (a row of zeros stays zeros), as float32."""
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    unit: Rows = (features / np.maximum(norms, 1e-12)).astype(np.float32)
    return unit


def check_dimensions(dimensions: int) -> None:
    if not 1 <= dimensions <= POOLED_DIMENSIONS:
        raise ModelError(
            f"image_feature_dimensions must be 1 to {POOLED_DIMENSIONS}, not {dimensions}"
        )


def image_features_name(model_name: str, dimensions: int = REDUCED_DIMENSIONS) -> str:
    """The name ImageFeatures(model_name, dimensions) records, without loading it."""
    if dimensions == POOLED_DIMENSIONS:
        return f"{model_name}:pooled"  # as before there was a reduction
    return f"{model_name}:svd{dimensions}"
