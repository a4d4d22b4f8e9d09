"""The classifier's 1,280 pooled features reduced to 256 for search by example.

Why: each image's vector is stored twice, in the catalog and in the Annoy base. At 1,280
float32 numbers that is 5 KiB and 5.4 KB an image, 10 GiB at 1 M images; at 256 it is
a fifth. The features are projected onto the 256 directions the classifier's last layer
reads most (the top right singular vectors of its 1,000 x 1,280 weight matrix): the
directions in which the network tells ImageNet's classes apart. That needs no data, so
every installation of the same weights projects alike. On tuxpaint's categories it cost
.013 of mAP@R and nothing of R@1 (docs/search-by-example.md); a PCA fitted on photos
would need a photo collection that the evaluation does not use, which is not at hand.

The projection is computed once in float64 from the weights package (with torch, which
reads it), each direction's sign fixed so that its largest component is positive, and
cached as a .npy file beside the ONNX export; later loads need no torch.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from semfs.config import make_private_dirs
from semfs.ml.onnx_export import mark_used, weights_key

log = logging.getLogger(__name__)

POOLED_DIMENSIONS = 1280  # EfficientNet-Lite's head, the same for lite0, lite1 and lite2
REDUCED_DIMENSIONS = 256  # the default of the setting image_feature_dimensions

Projection = np.ndarray[Any, np.dtype[np.float32]]  # (POOLED_DIMENSIONS, dimensions)


def projection_from(weight: np.ndarray, dimensions: int = REDUCED_DIMENSIONS) -> Projection:
    """The top `dimensions` right singular vectors of a last layer's weight matrix
    (classes x features), as the columns of a projection, signs fixed."""
    _, _, directions = np.linalg.svd(weight.astype(np.float64), full_matrices=False)
    top = directions[:dimensions]
    largest = np.abs(top).argmax(axis=1)
    signs = np.sign(top[np.arange(dimensions), largest])
    projection: Projection = np.ascontiguousarray((top * signs[:, None]).T, dtype=np.float32)
    return projection


def cached_projection(
    model_name: str, weights: Path, cache_dir: Path, dimensions: int = REDUCED_DIMENSIONS
) -> Projection:
    """The projection of these weights, from the cache, or computed and cached."""
    path = cache_dir / f"{model_name}-{weights_key(weights)}-svd{dimensions}.npy"
    if path.exists():
        try:
            loaded = np.load(path)
            if loaded.shape == (POOLED_DIMENSIONS, dimensions):
                mark_used(path)
                return np.ascontiguousarray(loaded, dtype=np.float32)
            log.warning("computing %s again: it has shape %s", path, loaded.shape)
        except (OSError, ValueError) as error:
            log.warning("computing %s again: %s", path, error)
    projection = projection_from(_last_layer(weights), dimensions)
    try:
        _publish(projection, path)
        mark_used(path)
    except OSError as error:  # a read-only cache: computed again next time, no harm
        log.warning("cannot cache %s: %s", path, error)
    return projection


def _last_layer(weights: Path) -> np.ndarray:
    import torch

    state = torch.load(weights, map_location="cpu", weights_only=True)
    weight: np.ndarray = next(v for k, v in state.items() if k.endswith("_fc.weight")).numpy()
    return weight


def _publish(projection: Projection, path: Path) -> None:
    """Written whole or not at all: another process may be loading it meanwhile."""
    make_private_dirs(path.parent)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            np.save(file, projection)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
