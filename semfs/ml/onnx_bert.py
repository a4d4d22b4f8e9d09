"""BERT sentence encoders run with onnxruntime: one short query in about a third of the
time torch takes (4-6 ms against 13-14 ms for all-MiniLM-L6-v2 on one core), because a
single sentence is too small for torch's per-operator overhead to pay off.

A sentence-transformers model that ships only torch weights (the packaged
all-MiniLM-L6-v2) is exported once with torch's ONNX exporter into the user's cache,
checked against torch on probe sentences, then published with a rename; later loads
open the file directly. Mean pooling over the tokens, as sentence-transformers does.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

Vectors = np.ndarray[Any, np.dtype[np.float32]]

# Sentences the export is checked on: a caption, a query, one with rare word pieces.
PROBES = ("a photo of an espresso, or a cup", "snow on mountains", "Zürich's façade at 3 a.m.")
MIN_PROBE_COSINE = 0.9999


class OnnxBertEncoder:
    """Token embeddings from an ONNX BERT, mean-pooled and normalised. Not thread-safe:
    the embedders around it hold a lock."""

    def __init__(self, model_file: Path, tokenizer: Any, max_tokens: int) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # a sentence is tiny; threads cost more than they save
        options.enable_cpu_mem_arena = False  # keeps resident memory low
        self._session = onnxruntime.InferenceSession(
            str(model_file), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {item.name for item in self._session.get_inputs()}
        # The token embeddings: the one output of shape (batch, tokens, dimensions).
        outputs = self._session.get_outputs()
        self._tokens_output = next(o.name for o in outputs if len(o.shape) == 3)
        self._tokenizer = tokenizer
        self._tokenizer.enable_truncation(max_tokens)
        self._tokenizer.enable_padding()

    def encode(self, texts: Sequence[str]) -> Vectors:
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        feeds = {name: array for name, array in feeds.items() if name in self._inputs}
        (tokens,) = self._session.run([self._tokens_output], feeds)
        hidden = np.asarray(tokens, dtype=np.float32)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)
        return normalised(pooled)


def normalised(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: Vectors = np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)
    return unit


def sentence_transformer_encoder(model_dir: Path, name: str, cache_dir: Path) -> OnnxBertEncoder:
    """The ONNX encoder of the sentence-transformers BERT in `model_dir`, exported on first
    use. Raises OSError or RuntimeError when it cannot be made (callers fall back to
    torch)."""
    from tokenizers import Tokenizer

    model_file = cache_dir / f"{name}-{_weights_key(model_dir)}.onnx"
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    if model_file.exists():
        try:
            return OnnxBertEncoder(model_file, tokenizer, max_sequence_length(model_dir))
        except Exception as error:  # onnxruntime's own types: a damaged cache file
            log.warning("exporting %s again: %s", model_file, error)
    _export(model_dir, model_file)
    return OnnxBertEncoder(model_file, tokenizer, max_sequence_length(model_dir))


def max_sequence_length(model_dir: Path) -> int:
    config = model_dir / "sentence_bert_config.json"
    if config.exists():
        return int(json.loads(config.read_text()).get("max_seq_length", 128))
    return 128


def _weights_key(model_dir: Path) -> str:
    # A reinstalled or changed model gets a new file; size and mtime say so without
    # hashing 90 MB on every start.
    weights = model_dir / "model.safetensors"
    if not weights.exists():
        weights = model_dir / "pytorch_model.bin"
    status = weights.stat()
    return f"{status.st_size:x}-{status.st_mtime_ns:x}"


def _export(model_dir: Path, model_file: Path) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    log.info("exporting %s to ONNX, once: %s", model_dir, model_file)
    model_file.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModel.from_pretrained(str(model_dir)).eval()
    probe = tokenizer(list(PROBES), return_tensors="pt", padding=True)
    inputs = (probe["input_ids"], probe["attention_mask"], probe["token_type_ids"])
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {name: {0: "batch", 1: "tokens"} for name in [*names, "token_embeddings"]}
    handle, temporary = tempfile.mkstemp(dir=model_file.parent, suffix=".onnx.tmp")
    os.close(handle)
    try:
        with _quiet():
            torch.onnx.export(
                _token_embeddings(model),
                inputs,
                temporary,
                input_names=names,
                output_names=["token_embeddings"],
                dynamic_axes=axes,
                dynamo=True,  # the older tracer mis-exports transformers' attention masks
                external_data=False,  # one file, so one rename publishes it
                verbose=False,
            )
        _check_export(model, probe, Path(temporary))
        os.replace(temporary, model_file)
    finally:
        Path(temporary).unlink(missing_ok=True)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter reports each step on stdout, at INFO and as warnings about its own
    limits; the daemon's log needs only the one line saying it exports."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


def _check_export(model: Any, probe: Any, exported: Path) -> None:
    import onnxruntime
    import torch

    with torch.inference_mode():
        expected = model(**probe).last_hidden_state.numpy()
    session = onnxruntime.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    feeds = {name: tensor.numpy() for name, tensor in probe.items()}
    (actual,) = session.run(None, feeds)
    mask = probe["attention_mask"].numpy()[:, :, None].astype(np.float32)
    cosines = (
        normalised((expected * mask).sum(axis=1)) * normalised((actual * mask).sum(axis=1))
    ).sum(axis=1)
    if float(cosines.min()) < MIN_PROBE_COSINE:
        raise RuntimeError(f"the ONNX export differs from torch (cosine {cosines.min():.6f})")


def _token_embeddings(model: Any) -> Any:
    """The model with its last hidden state as the one output (what sentence-transformers
    pools)."""
    import torch

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            output = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return output.last_hidden_state

    return TokenEmbeddings()


def user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "semfs"
