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
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import eval_measures as measures  # noqa: E402
import eval_photos  # noqa: E402
import eval_report  # noqa: E402

from semfs.catalog import Catalog  # noqa: E402
from semfs.config import Settings  # noqa: E402
from semfs.ml.embedder import embedder_factory  # noqa: E402

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


# --- running semfs and reading what it stored ------------------------------------------


def semfs(*args: object) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "semfs", *map(str, args)], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - started


def stored(store: Path, embedder: str) -> tuple[list[str], list[str], measures.Matrix]:
    """Store-relative paths, captions and vectors of every indexed image."""
    catalog = Catalog.open(Settings.load(store).catalog_path)
    try:
        reader = catalog.open_reader()
        rows = reader.execute(
            "SELECT f.dir, f.name, c.caption, v.vector FROM vectors v "
            "JOIN files f ON f.id = v.file_id JOIN descriptions c ON c.file_id = f.id "
            "WHERE v.embedder = ? ORDER BY f.id",
            (embedder,),
        ).fetchall()
        reader.close()
    finally:
        catalog.close()
    paths = [os.fsdecode(d + b"/" + n if d else n) for d, n, _, _ in rows]
    matrix = np.stack([np.frombuffer(v, dtype=np.float32) for *_, v in rows])
    return paths, [c for _, _, c, _ in rows], matrix


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
    sets: list[measures.QuerySet], matrix: measures.Matrix, embedder_spec: str, trees: int,
    search_k: int,
) -> dict[str, Any]:  # fmt: skip
    embedder = embedder_factory(embedder_spec)()
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


def annoy_sweep(matrix: measures.Matrix, sets: list[measures.QuerySet], embedder_spec: str
                ) -> list[dict[str, float]]:  # fmt: skip
    """Annoy's recall@10 against exact search over trees and search_k (-1: Annoy's
    default, trees x 10)."""
    embedder = embedder_factory(embedder_spec)()
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
        sources, raws = {}, {}
        for dataset in datasets:
            sources[dataset] = Path(temporary) / dataset
            raws[dataset] = DATASETS[dataset](sources[dataset], args.smoke)
            extra["datasets"][dataset] = sum(1 for p in sources[dataset].rglob("*.jpg"))
        for captioner in args.captioners:
            for dataset in datasets:
                store = Path(temporary) / (dataset + "-" + re.sub(r"\W", "_", captioner))
                subprocess.run(["cp", "-al", str(sources[dataset]), str(store)], check=True)
                crossed = args.all_embedders_for is None or captioner in args.all_embedders_for
                embedders = args.embedders if crossed else args.embedders[:1]
                for number, embedder in enumerate(embedders):
                    seconds = semfs("index", store, "--quiet", "--captioner", captioner,
                                    "--embedder", embedder)  # fmt: skip
                    name = embedder_factory(embedder)().name
                    paths, captions, matrix = stored(store, name)
                    sets = query_sets(raws[dataset], paths)
                    row = {"dataset": dataset, "captioner": captioner, "embedder": embedder,
                           "images": len(paths), "index_seconds": round(seconds, 1),
                           "captioned": number == 0}  # fmt: skip
                    row.update(evaluate(sets, matrix, embedder, settings.index_trees,
                                        settings.index_search_k))  # fmt: skip
                    rows.append(row)
                    print(json.dumps({k: v for k, v in row.items() if k != "distances"}),
                          flush=True)  # fmt: skip
                    if captioner == args.captioners[0] and number == 0 and not args.smoke:
                        extra["sweep"][dataset] = annoy_sweep(matrix, sets, embedder)
                    if dataset == datasets[0] and not args.no_costs:
                        costs(extra["costs"], captioner, embedder, store, paths, captions, sets)
    eval_report.report(rows, extra, time.time() - started, args.output, CUTS, settings.top_k)


def costs(into: dict[str, Any], captioner: str, embedder: str, store: Path, paths: list[str],
          captions: list[str], sets: list[Any]) -> None:  # fmt: skip
    if captioner not in into:
        images = [str(store / p) for p in paths[:COST_IMAGES]]
        into[captioner] = cost("captioner", captioner, images)
        print(captioner, into[captioner], flush=True)
    if embedder not in into:
        queries = [text for s in sets for text, _ in s.queries][:50]
        into[embedder] = cost("embedder", embedder, {"captions": captions, "queries": queries})
        print(embedder, into[embedder], flush=True)


if __name__ == "__main__":
    main()
