"""What scripts/eval_retrieval.py computes from stored vectors: ranking metrics (exact and
through Annoy), Annoy's recall against exact search, the relevance-cut table, and the
cost of a model measured in a child process (`python eval_measures.py cost ...`)."""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

Matrix = np.ndarray[Any, np.dtype[np.float32]]
KS = (1, 5, 10)
Ranker = Callable[[Matrix], list[list[int]]]  # query vectors -> item ids, best first


@dataclass(frozen=True)
class QuerySet:
    kind: str  # "sentences", "categories", "photos"
    queries: list[tuple[str, frozenset[int]]]  # text, relevant item ids (may be empty)

    @property
    def answerable(self) -> list[tuple[str, frozenset[int]]]:
        return [(text, relevant) for text, relevant in self.queries if relevant]


def average_precision(flags: Sequence[bool], relevant: int, k: int) -> float:
    hits, total = 0, 0.0
    for rank, is_relevant in enumerate(flags[:k], start=1):
        if is_relevant:
            hits += 1
            total += hits / rank
    return total / min(k, relevant)


def metrics(rankings: list[list[int]], relevants: list[frozenset[int]]) -> dict[str, float]:
    """Recall@k (a relevant item in the top k) and mAP@k (AP normalised by
    min(k, relevant)), k = 1, 5, 10 and R, the number of relevant items."""
    values: dict[str, list[float]] = {}
    for ranking, relevant in zip(rankings, relevants, strict=True):
        flags = [item in relevant for item in ranking]
        for k in KS:
            values.setdefault(f"R@{k}", []).append(float(any(flags[:k])))
            values.setdefault(f"mAP@{k}", []).append(average_precision(flags, len(relevant), k))
        values.setdefault("mAP@R", []).append(
            average_precision(flags, len(relevant), len(relevant))
        )
    return {name: float(np.mean(v)) for name, v in values.items()}


def exact_ranker(matrix: Matrix, depth: int) -> Ranker:
    def rank(vectors: Matrix) -> list[list[int]]:
        scores = vectors @ matrix.T
        return [[int(i) for i in np.argsort(-row)[:depth]] for row in scores]

    return rank


def annoy_ranker(matrix: Matrix, depth: int, trees: int, search_k: int) -> Ranker:
    from annoy import AnnoyIndex

    index = AnnoyIndex(matrix.shape[1], "angular")
    for i, vector in enumerate(matrix):
        index.add_item(i, vector.tolist())
    index.set_seed(1)
    index.build(trees, n_jobs=1)

    def rank(vectors: Matrix) -> list[list[int]]:
        return [list(index.get_nns_by_vector(v.tolist(), depth, search_k)) for v in vectors]

    return rank


def recall_at(approximate: list[list[int]], exact: list[list[int]], k: int) -> float:
    pairs = zip(approximate, exact, strict=True)
    found = [len(set(a[:k]) & set(e[:k])) / min(k, len(e)) for a, e in pairs]
    return float(np.mean(found))


def angular(vectors: Matrix, matrix: Matrix) -> Matrix:
    cosine = np.clip(vectors @ matrix.T, -1.0, 1.0)
    distances: Matrix = np.sqrt(np.maximum(2.0 - 2.0 * cosine, 0.0)).astype(np.float32)
    return distances


def cut_table(
    distances: Matrix, relevants: list[frozenset[int]], cuts: Sequence[float], top_k: int
) -> list[dict[str, float]]:
    """For each cut: the share of relevant (query, image) pairs kept, of irrelevant pairs
    dropped, how many irrelevant images a listing shows (at most top_k listed), the mean
    F1 of the listings, the share of queries listing at least one relevant image, and the
    share of queries with no relevant image that list nothing."""
    rows = []
    relevant_mask = np.zeros(distances.shape, dtype=bool)
    for q, relevant in enumerate(relevants):
        relevant_mask[q, list(relevant)] = True
    answerable = np.array([bool(r) for r in relevants])
    in_top_k = np.argsort(np.argsort(distances, axis=1), axis=1) < top_k
    for cut in cuts:
        within = distances <= cut
        listed = within & in_top_k
        kept = within[relevant_mask].mean() if relevant_mask.any() else float("nan")
        dropped = 1.0 - within[~relevant_mask & answerable[:, None]].mean()
        noise = (listed & ~relevant_mask)[answerable].sum(axis=1).mean()
        empty = (~listed[~answerable].any(axis=1)).mean() if (~answerable).any() else float("nan")
        # F1 of each answerable query's listing, averaged: every query counts the same.
        hits = (listed & relevant_mask).sum(axis=1)[answerable]
        shown = listed.sum(axis=1)[answerable]
        wanted = relevant_mask.sum(axis=1)[answerable]
        f1 = (2 * hits / np.maximum(1, shown + wanted)).mean()
        found = (hits > 0).mean()
        rows.append({"cut": cut, "kept": float(kept), "dropped": float(dropped),
                     "irrelevant_listed": float(noise), "f1": float(f1), "found": float(found),
                     "no_match_empty": float(empty)})  # fmt: skip
    return rows


# --- cost, measured in a child process so peak RSS is the model's own ------------------


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not getrusage's ru_maxrss: on Linux a
    child's ru_maxrss starts at its parent's RSS at fork (carried over the exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cost_of_captioner(spec: str, images: list[Path], batch: int = 8) -> dict[str, float]:
    from semfs.ml.captioner import make_captioner
    from semfs.ml.imaging import decode

    started = time.perf_counter()
    captioner = make_captioner(spec)
    loaded = time.perf_counter() - started
    pictures = []
    for path in images:  # decoded as ingest does (the decoding is not timed)
        with path.open("rb") as file:
            pictures.append(decode(file, 100_000_000, 100_000_000).image)
    captioner.caption(pictures[:batch])  # warm-up
    started = time.perf_counter()
    for i in range(0, len(pictures), batch):
        captioner.caption(pictures[i : i + batch])
    seconds = time.perf_counter() - started
    return {"load_s": loaded, "ms_per_image": 1000 * seconds / len(pictures),
            "peak_rss_mb": peak_rss_mb()}  # fmt: skip


def cost_of_embedder(spec: str, captions: list[str], queries: list[str]) -> dict[str, float]:
    from semfs.ml.embedder import make_embedder

    started = time.perf_counter()
    embedder = make_embedder(spec)
    loaded = time.perf_counter() - started
    embedder.embed(captions[:32])  # warm-up
    started = time.perf_counter()
    for i in range(0, len(captions), 32):
        embedder.embed(captions[i : i + 32])
    per_caption = 1000 * (time.perf_counter() - started) / len(captions)
    started = time.perf_counter()
    for query in queries:
        embedder.embed([query])
    per_query = 1000 * (time.perf_counter() - started) / len(queries)
    return {"load_s": loaded, "ms_per_caption": per_caption, "ms_per_query": per_query,
            "peak_rss_mb": peak_rss_mb()}  # fmt: skip


def main() -> None:
    """python eval_measures.py cost captioner SPEC FILE.json (a list of image paths) or
    cost embedder SPEC FILE.json ({"captions": [...], "queries": [...]}); prints JSON."""
    _, what, kind, spec, data = sys.argv
    assert what == "cost"
    payload = json.loads(Path(data).read_text())
    if kind == "captioner":
        result = cost_of_captioner(spec, [Path(p) for p in payload])
    else:
        result = cost_of_embedder(spec, payload["captions"], payload["queries"])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
