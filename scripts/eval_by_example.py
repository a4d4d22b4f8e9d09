"""Search by example against search by text, on the same photos and categories.

    .venv/bin/python scripts/eval_by_example.py [--output docs/evaluation-by-example.md]
                                                [--smoke]

Data: tuxpaint's categorised photos (scripts/eval_retrieval.py, docs/evaluation.md).
Three ways to find the photos of a category:
- text: the category's name as the query, ranked by caption vectors (what `search/`
  does; the numbers of docs/evaluation-results.md);
- example, by image features: each photo of the category as the query, ranked by the
  pooled EfficientNet features (what `similar/` does), the photo itself left out;
- example, by caption: the same photos as queries, ranked by their caption's vector
  (what search by example would give without image features).
Relevant: the other photos of the category. Ranking is exact; the image features are
also ranked through Annoy (25 trees, the search_k of the settings) with recall@10
against exact. Metrics as in eval_measures: Recall@k and mAP@k (k = 1, 10, R).

It also calibrates `similar/`'s relevance cut as the text cut is (eval_report.calibrate):
for each angular distance, the mean F1 of the example queries' listings (at most top_k
within the cut); the cut is the loosest within PLATEAU of the best
(semfs/ml/calibration.py keeps it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import eval_measures as measures
import numpy as np
from eval_report import PLATEAU
from eval_retrieval import STAMPS, decoded_images, tuxpaint_store

from semfs.config import Settings
from semfs.ml.captioner import make_captioner
from semfs.ml.embedder import make_embedder
from semfs.ml.feature_projection import POOLED_DIMENSIONS
from semfs.ml.image_features import ImageFeatures

BATCH = 8
DEPTH = 60
CUTS = [round(0.80 + 0.05 * i, 2) for i in range(13)]  # 0.80 .. 1.40
SHOWN = ["R@1", "R@10", "mAP@10", "mAP@R"]


def in_batches(function: Any, items: list[Any]) -> np.ndarray:
    return np.concatenate([function(items[i : i + BATCH]) for i in range(0, len(items), BATCH)])


def by_example(
    ranker: measures.Ranker, matrix: np.ndarray, categories: list[frozenset[int]]
) -> tuple[list[list[int]], list[frozenset[int]]]:
    """Every member of every category as a query; itself is left out of its ranking."""
    queries = [(member, members) for members in categories for member in sorted(members)]
    rankings = ranker(matrix[[member for member, _ in queries]])
    return (
        [[i for i in ranking if i != member] for ranking, (member, _) in zip(rankings, queries,
                                                                             strict=True)],
        [members - {member} for member, members in queries],
    )  # fmt: skip


def calibrate_cut(
    matrix: np.ndarray, categories: list[frozenset[int]], top_k: int
) -> tuple[list[dict[str, float]], float]:
    """F1 of the example listings at each cut, and the loosest cut on the plateau."""
    queries = [(member, members - {member}) for members in categories
               for member in sorted(members)]  # fmt: skip
    distances = measures.angular(matrix[[member for member, _ in queries]], matrix)
    for row, (member, _) in enumerate(queries):
        distances[row, member] = np.inf  # the example itself is never listed
    table = measures.cut_table(distances, [relevant for _, relevant in queries], CUTS, top_k)
    table.append(measures.cut_table(distances, [r for _, r in queries], [2.0], top_k)[0])
    for row in table:
        del row["no_match_empty"]  # every example has a category: no such queries
        row["empty"] = float((distances > row["cut"]).all(axis=1).mean())
    best = max(row["f1"] for row in table)
    return table, max(row["cut"] for row in table[:-1] if row["f1"] >= (1 - PLATEAU) * best)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, help="write the results page (and .json)")
    parser.add_argument("--smoke", action="store_true", help="two categories, for CI")
    args = parser.parse_args()
    if not STAMPS.is_dir():
        sys.exit("no data: apt-get install --no-install-recommends tuxpaint-stamps-default")
    settings = Settings(store=Path("/nonexistent"))
    with tempfile.TemporaryDirectory(prefix="semfs-eval-") as temporary:
        store = Path(temporary)
        raw = tuxpaint_store(store, args.smoke)
        paths = sorted(str(p.relative_to(store)) for p in store.rglob("*.jpg"))
        images = decoded_images(store, paths)
    ids = {path: i for i, path in enumerate(paths)}
    names = [name for name, _ in raw["categories"]]
    categories = [frozenset(ids[p] for p in members) for _, members in raw["categories"]]

    started = time.perf_counter()
    features = ImageFeatures(settings.image_features, settings.image_feature_dimensions)
    feature_matrix = in_batches(features.features, images)
    feature_ms = 1000 * (time.perf_counter() - started) / len(images)
    whole = ImageFeatures(settings.image_features, POOLED_DIMENSIONS)  # not reduced
    whole_matrix = in_batches(whole.features, images)
    captioner, embedder = make_captioner(settings.captioner), make_embedder(settings.embedder)
    caption_matrix = embedder.embed(in_batches(captioner.caption, images).tolist())

    exact_features = measures.exact_ranker(feature_matrix, DEPTH)
    annoy_features = measures.annoy_ranker(
        feature_matrix, DEPTH, settings.index_trees, settings.index_search_k
    )
    exact_captions = measures.exact_ranker(caption_matrix, DEPTH)
    rows: dict[str, dict[str, float]] = {}
    rows["text: the category's name, by caption"] = measures.metrics(
        exact_captions(embedder.embed(names)), categories
    )
    query_started = time.perf_counter()
    image_rankings, image_relevants = by_example(exact_features, feature_matrix, categories)
    query_ms = 1000 * (time.perf_counter() - query_started) / len(image_rankings)
    rows["example: a photo of it, by image features"] = measures.metrics(
        image_rankings, image_relevants
    )
    annoy_rankings, _ = by_example(annoy_features, feature_matrix, categories)
    rows["example: a photo of it, by image features (Annoy)"] = measures.metrics(
        annoy_rankings, image_relevants
    )
    rows[f"example: a photo of it, by image features kept whole ({POOLED_DIMENSIONS})"] = (
        measures.metrics(*by_example(measures.exact_ranker(whole_matrix, DEPTH), whole_matrix,
                                     categories))
    )  # fmt: skip
    rows["example: a photo of it, by its caption"] = measures.metrics(
        *by_example(exact_captions, caption_matrix, categories)
    )
    cut_rows, cut = calibrate_cut(feature_matrix, categories, settings.top_k)
    whole_cut_rows, whole_cut = calibrate_cut(whole_matrix, categories, settings.top_k)
    result = {
        "images": len(paths),
        "categories": len(categories),
        "example_queries": len(image_rankings),
        "features": features.name,
        "whole_features": whole.name,
        "captioner": captioner.name,
        "embedder": embedder.name,
        "feature_ms_per_image": round(feature_ms, 1),
        "exact_query_ms": round(query_ms, 2),
        "annoy_recall@10": measures.recall_at(annoy_rankings, image_rankings, 10),
        "rows": rows,
        "cut": cut,
        "cut_table": cut_rows,
        "whole_cut": whole_cut,
        "whole_best_f1": max(row["f1"] for row in whole_cut_rows),
    }
    print(json.dumps(result, indent=2))
    if args.output:
        args.output.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        args.output.write_text(report(result))


def report(result: dict[str, Any]) -> str:
    lines = [
        "# Search by example: measured beside search by text",
        "",
        f"Made by `scripts/eval_by_example.py` on {result['images']} tuxpaint photos in "
        f"{result['categories']} categories of at least 3 ({result['example_queries']} example "
        f"queries). Image features: `{result['features']}`; captions: `{result['captioner']}`; "
        f"embedder: `{result['embedder']}`. Relevant: the other photos of the category. "
        "Exact ranking unless marked Annoy.",
        "",
        "| how the category is asked for | " + " | ".join(SHOWN) + " |",
        "|---|" + "---|" * len(SHOWN),
    ]
    for name, values in result["rows"].items():
        lines.append(f"| {name} | " + " | ".join(f"{values[m]:.2f}" for m in SHOWN) + " |")
    lines += [
        "",
        f"- Image features cost {result['feature_ms_per_image']} ms an image (decoded, one "
        "thread, batches of 8); an exact query over all of them "
        f"{result['exact_query_ms']} ms (all example queries in one matrix product).",
        f"- Annoy's recall@10 against exact ranking of the image features: "
        f"{result['annoy_recall@10']:.3f}.",
        "",
        "## The relevance cut of `similar/`",
        "",
        "Each example's listing (at most top_k images within the cut, itself left out) "
        f"against the other photos of its category. Chosen: **{result['cut']:.2f}**, the "
        "loosest cut within 2% of the best mean F1 (2.00: no cut).",
        "",
        f"The features kept whole (`{result['whole_features']}`) are calibrated the same way: "
        f"**{result['whole_cut']:.2f}** (best mean F1 {result['whole_best_f1']:.3f}).",
        "",
        "| cut | mean F1 | relevant kept | at least one relevant listed | irrelevant listed "
        "| nothing listed |",
        "|--:|--:|--:|--:|--:|--:|",
    ]
    for row in result["cut_table"]:
        lines.append(f"| {row['cut']:.2f} | {row['f1']:.3f} | {row['kept']:.2f} | "
                     f"{row['found']:.2f} | {row['irrelevant_listed']:.1f} | "
                     f"{row['empty']:.2f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
