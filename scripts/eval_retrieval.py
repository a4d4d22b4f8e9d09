"""Retrieval quality of semfs's captioner/embedder pairs on real photos, and what it costs.

    scripts/eval [--captioners C ...] [--embedders E ...] [--datasets tuxpaint photos]
                 [--output docs/evaluation-results.md] [--smoke] [--no-costs]

Data (docs/evaluation.md says how to install it):
- tuxpaint: Debian's tuxpaint-stamps-default, about 430 photos outside cartoon/ and
  symbols/, each with a sentence a person wrote (the .txt beside it) and a category (its
  folder). Queries: every sentence (relevant: that photo) and every category with at
  least 3 photos ("birds", "fruit"; relevant: its photos). RGBA cut-outs go on white.
- photos: scikit-image's, OpenCV's and MATE's photos with hand-written queries
  (scripts/eval_photos.py, written before any result was seen).

Each captioner indexes each dataset's store once with `semfs index` (the real ingest
path); each further embedder re-embeds the stored captions. Queries are never tuned to.
Ranking is exact over all stored vectors with no relevance cut (the captions and the
embedding are measured, not the index); the same metrics are then computed through an
Annoy index (25 trees, search_k from semfs.config.Settings) with its recall@10 against
exact search. Metrics: Recall@k and mAP@k (AP normalised by min(k, relevant)) for
k = 1, 5, 10 and R. Costs (ms per image captioned, per caption and query embedded, peak
RSS) are measured in child processes. The relevance-cut table is computed on tuxpaint's
queries and checked on the photos set.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import eval_measures as measures
import eval_photos
import eval_report
import numpy as np
from PIL import Image

from semfs.config import Settings
from semfs.ml.captioner import CaptionOptions, ClassifierCaptioner
from semfs.ml.embedder import Embedder, embedder_factory
from semfs.ml.imaging import decode

REPO = Path(__file__).resolve().parent.parent

STAMPS = Path("/usr/share/tuxpaint/stamps")
SKIPPED = {"cartoon", "symbols"}
MIN_CATEGORY = 3
DEPTH = 50  # ranks kept per query (R is at most 44 here)
DEFAULT_EMBEDDERS = [
    "sentence-transformers:all-MiniLM-L6-v2",
    "onnx:paraphrase-MiniLM-L3-v2",
    "sentence-transformers:all-mpnet-base-v2",
]
CUTS = [round(0.80 + 0.025 * i, 3) for i in range(21)]  # 0.80 .. 1.30
COST_IMAGES = 48
COST_QUERIES = 50
BATCH = 8  # images per model call, as ingest_batch


# --- datasets: a store of images and query sets over its store-relative paths -----------


def tuxpaint_store(store: Path, smoke: bool) -> dict[str, list[tuple[str, set[str]]]]:
    sentences: list[tuple[str, set[str]]] = []
    members: dict[str, set[str]] = {}
    for png in sorted(STAMPS.rglob("*.png")):
        relative = png.relative_to(STAMPS)
        text = png.with_suffix(".txt")
        if SKIPPED & set(relative.parts[:-1]) or not text.is_file():
            continue
        category = relative.parent.name.replace("_", " ")
        if smoke and not smoke_keeps(members, category):
            continue
        target = store / relative.parent / (png.stem + ".jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        image = Image.open(png).convert("RGBA")
        flat = Image.new("RGB", image.size, (255, 255, 255))
        flat.paste(image, mask=image.getchannel("A"))
        flat.save(target, quality=92)
        path = str(target.relative_to(store))
        sentence = text.read_text(errors="replace").splitlines()[0].strip()
        sentences.append((sentence, {path}))
        members.setdefault(category, set()).add(path)
    categories = [(c, paths) for c, paths in sorted(members.items()) if len(paths) >= MIN_CATEGORY]
    return {"sentences": sentences, "categories": categories}


def smoke_keeps(members: dict[str, set[str]], category: str) -> bool:
    """A smoke run keeps the first two categories, four photos each."""
    if category in members:
        return len(members[category]) < 4
    return len(members) < 2


def photos_store(store: Path, smoke: bool) -> dict[str, list[tuple[str, set[str]]]]:
    by_stem: dict[str, str] = {}
    sources = eval_photos.photo_sources()
    if smoke:
        sources = [p for p in sources if p.stem in ("coffee", "chelsea", "rocket", "astronaut")]
    for source in sources:
        target = store / source.parent.name / (source.stem + ".jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.open(source).convert("RGB").save(target, quality=92)
        by_stem[source.stem] = str(target.relative_to(store))
    queries = [
        (text, {by_stem[stem] for stem in stems if stem in by_stem})
        for text, stems in eval_photos.QUERIES.items()
        if not smoke or all(stem in by_stem for stem in stems)
    ]
    return {"photos": queries}


DATASETS = {"tuxpaint": tuxpaint_store, "photos": photos_store}


# --- captions and vectors, as the ingest path makes them -------------------------------


def decoded_images(store: Path, paths: list[str]) -> list[Image.Image]:
    """The images as ingest hands them to the captioner (semfs.ml.imaging.decode)."""
    settings = Settings(store=store)
    limits = settings.max_image_pixels, settings.max_full_decode_pixels
    images = []
    for path in paths:
        with (store / path).open("rb") as file:
            images.append(decode(file, *limits).image)
    return images


def caption_variants(
    specs: list[str], images: list[Image.Image]
) -> tuple[dict[str, list[str]], dict[str, float]]:
    """Captions of every image for every captioner spec, and ms per image. Classifier
    variants that differ only in how labels become text (+wide, +gloss) share one pass of
    the model: the same probabilities, described with each variant's options."""
    groups: dict[tuple[str, bool], list[str]] = {}
    for spec in specs:
        name, options = classifier_spec(spec)
        groups.setdefault((name, options.crops), []).append(spec)
    captions: dict[str, list[str]] = {}
    ms: dict[str, float] = {}
    for (name, crops), members in groups.items():
        captioner = ClassifierCaptioner(name, CaptionOptions(crops=crops))
        started = time.perf_counter()
        rows = np.concatenate([captioner.probabilities(images[i : i + BATCH])
                               for i in range(0, len(images), BATCH)])  # fmt: skip
        seconds = time.perf_counter() - started
        for spec in members:
            options = classifier_spec(spec)[1]
            captions[spec] = [captioner.describe(row, options) for row in rows]
            ms[spec] = 1000 * seconds / len(images)
        print(f"captioned {len(images)} images with {name} crops={crops} in {seconds:.0f} s",
              flush=True)  # fmt: skip
    return captions, ms


def classifier_spec(spec: str) -> tuple[str, CaptionOptions]:
    kind, _, argument = spec.partition(":")
    if kind != "classifier":
        sys.exit(f"the harness compares classifier captioners, not {spec!r}")
    name, *flags = (argument or "efficientnet-lite0").split("+")
    return name or "efficientnet-lite0", CaptionOptions.parse(flags)


def query_sets(
    raw: dict[str, list[tuple[str, set[str]]]], paths: list[str]
) -> list[measures.QuerySet]:
    ids = {path: i for i, path in enumerate(paths)}
    sets = []
    for kind, queries in raw.items():
        found = [(text, frozenset(ids[p] for p in rel if p in ids)) for text, rel in queries]
        sets.append(measures.QuerySet(kind, found))
    return sets


# --- one configuration -------------------------------------------------------------------


def evaluate(
    sets: list[measures.QuerySet], matrix: measures.Matrix, embedder: Embedder, trees: int,
    search_k: int,
) -> dict[str, Any]:  # fmt: skip
    exact = measures.exact_ranker(matrix, DEPTH)
    annoy = measures.annoy_ranker(matrix, DEPTH, trees, search_k)
    result: dict[str, Any] = {"distances": {}}
    for query_set in sets:
        vectors = embedder.embed([text for text, _ in query_set.queries])
        relevants = [relevant for _, relevant in query_set.queries]
        answerable = [i for i, r in enumerate(relevants) if r]
        exact_ranks, annoy_ranks = exact(vectors), annoy(vectors)
        pick = [relevants[i] for i in answerable]
        result[query_set.kind] = measures.metrics([exact_ranks[i] for i in answerable], pick)
        result[query_set.kind]["queries"] = len(answerable)
        result[f"{query_set.kind} (Annoy)"] = measures.metrics(
            [annoy_ranks[i] for i in answerable], pick
        )
        result[f"{query_set.kind} (Annoy)"]["recall@10"] = measures.recall_at(
            annoy_ranks, exact_ranks, 10
        )
        result["distances"][query_set.kind] = (measures.angular(vectors, matrix), relevants)
    return result


def annoy_sweep(
    matrix: measures.Matrix, sets: list[measures.QuerySet], embedder: Embedder
) -> list[dict[str, float]]:
    """Annoy's recall@10 against exact search over trees and search_k (-1: Annoy's
    default, trees x 10)."""
    vectors = embedder.embed([text for s in sets for text, _ in s.queries])
    exact = measures.exact_ranker(matrix, 10)(vectors)
    rows = []
    for trees in (10, 25, 50):
        for search_k in (-1, 100, 300, 1000, 10_000):
            started = time.perf_counter()
            approximate = measures.annoy_ranker(matrix, 10, trees, search_k)(vectors)
            seconds = time.perf_counter() - started
            rows.append({"trees": trees, "search_k": search_k,
                         "recall@10": measures.recall_at(approximate, exact, 10),
                         "build_and_query_s": seconds})  # fmt: skip
    return rows


def cost(kind: str, spec: str, payload: object) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".json") as data:
        json.dump(payload, data)
        data.flush()
        out = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "eval_measures.py"), "cost", kind, spec,
             data.name], check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--captioners", nargs="+", default=["classifier:efficientnet-lite0"])
    parser.add_argument("--embedders", nargs="+", default=DEFAULT_EMBEDDERS)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--output", type=Path, help="write the results page (and .png)")
    parser.add_argument("--smoke", action="store_true", help="a few photos, for CI")
    parser.add_argument("--no-costs", action="store_true", help="skip the cost children")
    parser.add_argument("--all-embedders-for", nargs="+", metavar="CAPTIONER",
                        help="only these get every embedder; others the first")  # fmt: skip
    args = parser.parse_args()
    if args.smoke:  # one configuration, nothing but the metrics
        args.captioners, args.embedders = args.captioners[:1], args.embedders[:1]
        args.no_costs = True
    datasets = [d for d in args.datasets if d != "tuxpaint" or STAMPS.is_dir()]
    if not datasets:
        sys.exit("no data: apt-get install --no-install-recommends tuxpaint-stamps-default")
    if args.smoke:  # one dataset: tuxpaint if installed, else the photos
        datasets = datasets[:1]
    settings = Settings(store=Path("/nonexistent"))
    started = time.time()
    rows: list[dict[str, Any]] = []
    extra: dict[str, Any] = {"datasets": {}, "costs": {}, "sweep": {}}
    with tempfile.TemporaryDirectory(prefix="semfs-eval-") as temporary:
        work: dict[str, Any] = {}
        for dataset in datasets:
            store = Path(temporary) / dataset
            raw = DATASETS[dataset](store, args.smoke)
            paths = sorted(str(p.relative_to(store)) for p in store.rglob("*.jpg"))
            captions, caption_ms = caption_variants(args.captioners, decoded_images(store, paths))
            work[dataset] = (store, paths, query_sets(raw, paths), captions, caption_ms)
            extra["datasets"][dataset] = len(paths)
        for number, embedder_spec in enumerate(args.embedders):
            embedder = embedder_factory(embedder_spec)()
            for dataset, (_, paths, sets, captions, caption_ms) in work.items():
                for captioner in args.captioners:
                    crossed = args.all_embedders_for is None or captioner in args.all_embedders_for
                    if number > 0 and not crossed:
                        continue
                    embed_started = time.perf_counter()
                    matrix = embedder.embed(captions[captioner])
                    embed_ms = 1000 * (time.perf_counter() - embed_started) / len(paths)
                    row = {"dataset": dataset, "captioner": captioner, "embedder": embedder_spec,
                           "images": len(paths), "caption_ms": caption_ms[captioner],
                           "embed_ms": embed_ms, "examples": captions[captioner][:3]}  # fmt: skip
                    row.update(evaluate(sets, matrix, embedder, settings.index_trees,
                                        settings.index_search_k))  # fmt: skip
                    rows.append(row)
                    print(json.dumps({k: v for k, v in row.items() if k != "distances"}),
                          flush=True)  # fmt: skip
                    if captioner == args.captioners[0] and number == 0 and not args.smoke:
                        extra["sweep"][dataset] = annoy_sweep(matrix, sets, embedder)
            del embedder
        if not args.no_costs:
            store, paths, sets, captions, _ = work[datasets[0]]
            extra["costs"] = costs(args, store, paths, sets, captions)
    detailed = args.all_embedders_for or args.captioners[:1]  # full cut tables for these
    eval_report.report(rows, extra, time.time() - started, args.output, CUTS, settings.top_k,
                       detailed)  # fmt: skip


def costs(args: argparse.Namespace, store: Path, paths: list[str],
          sets: list[measures.QuerySet], captions: dict[str, list[str]]
          ) -> dict[str, dict[str, float]]:  # fmt: skip
    """Each model alone in a child process: one captioner per model pass (the +wide and
    +gloss variants cost the same as their base), every embedder."""
    into: dict[str, dict[str, float]] = {}
    images = [str(store / p) for p in paths[:COST_IMAGES]]
    passes = {}
    for spec in args.captioners:
        name, options = classifier_spec(spec)
        passes.setdefault((name, options.crops), spec)
    for spec in passes.values():
        into[spec] = cost("captioner", spec, images)
        print(spec, into[spec], flush=True)
    texts = captions[args.captioners[0]]
    queries = [text for s in sets for text, _ in s.queries][:COST_QUERIES]
    for spec in args.embedders:
        into[spec] = cost("embedder", spec, {"captions": texts, "queries": queries})
        print(spec, into[spec], flush=True)
    return into


if __name__ == "__main__":
    main()
