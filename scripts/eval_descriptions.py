"""Descriptions stored in image files: in place of the model's caption, or added to it?

    .venv/bin/python scripts/eval_descriptions.py [--share 0.3] [--seed 19]
                 [--cache ~/.cache/semfs/eval-descriptions-captions.json] [--json out.json]

Issue 19, item 3. On tuxpaint (docs/evaluation.md: 430 photos, each with a sentence a
person wrote and a category, its folder), a fixed share of the photos (30%, drawn with a
fixed seed) is given a description as if stored in the file (EXIF ImageDescription / XMP
dc:description), a third of each kind, all written down below before anything was run:

- junk: camera boilerplate, the writing software, camera file names, web addresses;
- titles a person gives that say nothing of what the photo shows ("Holiday 2019");
- short content descriptions made from the photo's category ("our dogs in the garden").

Each photo's text is then made five ways and embedded, the model's caption computed once
(and cached) with the default captioner:

- caption: the model's caption only (the baseline, as if no file had a description);
- replace: the description in place of the caption (semfs before ae71dbf);
- replace+filter: the same, junk refused (semfs.ml.embedded_text.refusal);
- add+filter: the description added to the caption (semfs now:
  semfs.ingest.descriptions.model_description), junk refused;
- add: added, junk kept (for reference).

Queries: tuxpaint's sentences and categories (scripts/eval_retrieval.py), exact ranking
over every vector, mAP@R and R@10 (scripts/eval_measures.py). The project's query sets
have no held-out part; this script sets one aside by a hash of the query's text (30%,
fixed before running) and reports it apart: nothing here is tuned, so the two parts
should agree, and where they do not, the difference is what one query set's draw moves.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every model loads from packages
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import eval_measures as measures
import eval_retrieval
from PIL import Image

from semfs.ingest.descriptions import model_description
from semfs.ml.embedded_text import refusal
from semfs.ml.embedder import embedder_factory
from semfs.ml.imaging import DecodedImage

CAPTIONER = "classifier:efficientnet-lite0+wide+gloss"  # `classifier`, the default
EMBEDDER = "sentence-transformers:all-MiniLM-L6-v2"  # the default embedder
SEED = 19  # the number
SHARE = 0.30  # photos given a description
HELD_OUT = 0.30  # queries set aside by hash
DEPTH = 50

# --- the descriptions, written before any run --------------------------------------------

# What cameras, phones, editors and web sites leave in the description field. {n} is a
# number drawn from the seed.
JUNK = [
    "OLYMPUS DIGITAL CAMERA",
    "SONY DSC",
    "Exif JPEG",
    "KODAK Digital Still Camera",
    "SAMSUNG",
    "Created with GIMP",
    "Processed with VSCO",
    "IMG_{n}.JPG",
    "DSC0{n}",
    "PXL_2021081{n}",
    "P10{n}.jpg",
    "http://www.flickr.com/photos/user{n}/",
    "www.example-museum.org/collection/{n}",
    "https://commons.wikimedia.org/wiki/File:Photo_{n}.jpg",
]
# Titles people give: an event, a place, a date, a person. Nothing of the content.
TITLES = [
    "Holiday 2019",
    "Grandma's 80th",
    "Summer in Brittany",
    "Our trip to Lisbon",
    "Christmas at the Meyers'",
    "Sunday afternoon",
    "Anna's birthday party",
    "Weekend away with the kids",
    "Best day ever",
    "Easter 2021",
    "For Dad",
    "Last day of school",
]
# Short content descriptions; {what} is the photo's category (its tuxpaint folder, "_"
# as a space: "dogs", "fruit", "musical instruments" are written as the folder says).
CONTENT = [
    "our {what} in the garden",
    "{what} we saw on the farm",
    "the {what} at grandma's house",
    "a picture of {what} from the market",
    "{what} on our trip",
    "my {what} photo from last weekend",
    "some {what} at the zoo",
    "the kids' {what}",
]
KINDS = ("junk", "title", "content")


def descriptions(paths: list[str], share: float, seed: int) -> dict[str, tuple[str, str]]:
    """Path -> (kind, description) for a `share` of the photos, a third of each kind."""
    rng = random.Random(seed)
    chosen = rng.sample(sorted(paths), round(share * len(paths)))
    given: dict[str, tuple[str, str]] = {}
    for i, path in enumerate(chosen):
        kind = KINDS[i % len(KINDS)]
        if kind == "junk":
            text = rng.choice(JUNK).format(n=rng.randrange(1000, 10000))
        elif kind == "title":
            text = rng.choice(TITLES)
        else:
            what = Path(path).parent.name.replace("_", " ")
            text = rng.choice(CONTENT).format(what=what)
        given[path] = (kind, text)
    return given


def held_out(text: str) -> bool:
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < HELD_OUT


# --- the texts each way -------------------------------------------------------------------

_NO_IMAGE = Image.new("RGB", (1, 1))


def texts(captions: list[str], paths: list[str], given: dict[str, tuple[str, str]]
          ) -> dict[str, list[str]]:  # fmt: skip
    names = ("caption", "replace", "replace+filter", "add+filter", "add")
    ways: dict[str, list[str]] = {name: [] for name in names}
    for caption, path in zip(captions, paths, strict=True):
        description = given.get(path, (None, None))[1]
        kept = description if description is not None and refusal(description) is None else None
        ways["caption"].append(caption)
        ways["replace"].append(description or caption)
        ways["replace+filter"].append(kept or caption)
        decoded = DecodedImage(_NO_IMAGE, kept, "exif" if kept else None)
        ways["add+filter"].append(model_description(caption, CAPTIONER, decoded).caption)
        decoded = DecodedImage(_NO_IMAGE, description, "exif" if description else None)
        ways["add"].append(model_description(caption, CAPTIONER, decoded).caption)
    return ways


def cached_captions(store: Path, paths: list[str], cache: Path) -> list[str]:
    """The model's captions, computed once: the cache is keyed by captioner and path."""
    known: dict[str, str] = {}
    if cache.is_file():
        data = json.loads(cache.read_text())
        if data.get("captioner") == CAPTIONER:
            known = data["captions"]
    if all(p in known for p in paths):
        print(f"captions from {cache}", flush=True)
        return [known[p] for p in paths]
    images = eval_retrieval.decoded_images(store, paths)
    captions = eval_retrieval.caption_variants([CAPTIONER], images)[0][CAPTIONER]
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"captioner": CAPTIONER,
                                 "captions": dict(zip(paths, captions, strict=True))}))  # fmt: skip
    return captions


# --- measuring -------------------------------------------------------------------------------


def measure(
    sets: list[measures.QuerySet], query_vectors: dict[str, measures.Matrix],
    matrix: measures.Matrix, touched: dict[str, set[int]],
) -> dict[str, dict[str, float]]:  # fmt: skip
    """mAP@R and R@10 per query set, its held-out part and the rest, and (sentences) the
    queries whose photo was given a description, of each kind."""
    rank = measures.exact_ranker(matrix, DEPTH)
    out: dict[str, dict[str, float]] = {}
    for query_set in sets:
        rankings = rank(query_vectors[query_set.kind])
        rows = [(text, relevant, ranking) for (text, relevant), ranking
                in zip(query_set.queries, rankings, strict=True) if relevant]  # fmt: skip
        parts = {
            query_set.kind: rows,
            f"{query_set.kind}, held out": [r for r in rows if held_out(r[0])],
            f"{query_set.kind}, the rest": [r for r in rows if not held_out(r[0])],
        }
        if query_set.kind == "sentences":
            for kind, photos in touched.items():
                parts[f"sentences, photo given {kind}"] = [r for r in rows if r[1] & photos]
        for name, part in parts.items():
            values = measures.metrics([r[2] for r in part], [r[1] for r in part])
            out[name] = {"mAP@R": values["mAP@R"], "R@10": values["R@10"], "queries": len(part)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--share", type=float, default=SHARE)
    parser.add_argument("--seed", type=int, default=SEED)
    cache = Path.home() / ".cache/semfs/eval-descriptions-captions.json"
    parser.add_argument("--cache", type=Path, default=cache, help="the model's captions")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    if not eval_retrieval.STAMPS.is_dir():
        sys.exit("no data: apt-get install --no-install-recommends tuxpaint-stamps-default")
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="semfs-eval-descriptions-") as temporary:
        store = Path(temporary) / "tuxpaint"
        raw = eval_retrieval.tuxpaint_store(store, smoke=False)
        paths = sorted(str(p.relative_to(store)) for p in store.rglob("*.jpg"))
        captions = cached_captions(store, paths, args.cache)
    sets = eval_retrieval.query_sets(raw, paths)
    given = descriptions(paths, args.share, args.seed)
    touched = {kind: {i for i, p in enumerate(paths) if given.get(p, ("",))[0] == kind}
               for kind in ("junk", "title", "content")}  # fmt: skip
    touched["any"] = set().union(*touched.values())
    ways = texts(captions, paths, given)

    refused: dict[str, dict[str, int]] = {kind: {"given": 0, "refused": 0} for kind in KINDS}
    reasons: dict[str, int] = {}
    for kind, text in given.values():
        refused[kind]["given"] += 1
        reason = refusal(text)
        if reason is not None:
            refused[kind]["refused"] += 1
            reasons[reason] = reasons.get(reason, 0) + 1
    passed = sorted({t for k, t in given.values() if k == "junk" and refusal(t) is None})
    wrongly = sorted({t for k, t in given.values() if k != "junk" and refusal(t) is not None})

    embedder = embedder_factory(EMBEDDER)()
    query_vectors = {s.kind: embedder.embed([t for t, _ in s.queries]) for s in sets}
    results: dict[str, Any] = {}
    for way, way_texts in ways.items():
        embed_started = time.perf_counter()
        matrix = embedder.embed(way_texts)
        results[way] = measure(sets, query_vectors, matrix, touched)
        print(f"{way}: embedded {len(way_texts)} in {time.perf_counter() - embed_started:.0f} s "
              + json.dumps(results[way]), flush=True)  # fmt: skip

    report = {"captioner": CAPTIONER, "embedder": EMBEDDER, "photos": len(paths),
              "described": len(given), "seed": args.seed, "share": args.share,
              "filter": refused, "reasons": reasons, "junk kept": passed,
              "real refused": wrongly, "results": results,
              "examples": {k: [t for kk, t in given.values() if kk == k][:6] for k in KINDS},
              "seconds": time.time() - started}  # fmt: skip
    print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


def print_table(report: dict[str, Any]) -> None:
    results = report["results"]
    parts = list(next(iter(results.values())))
    print(f"\n{report['photos']} photos, {report['described']} described; "
          f"{report['captioner']} + {report['embedder']}; {report['seconds']:.0f} s")  # fmt: skip
    for kind, counts in report["filter"].items():
        print(f"filter: {kind} {counts['refused']} of {counts['given']} refused")
    print(f"reasons: {report['reasons']}; junk kept: {report['junk kept']}; "
          f"real refused: {report['real refused']}")  # fmt: skip
    heads = [f"{p} ({results['caption'][p]['queries']}) mAP@R / R@10" for p in parts]
    print("| Text of a photo | " + " | ".join(heads) + " |")
    print("|---|" + "---|" * len(parts))
    for way, values in results.items():
        cells = [f"{values[p]['mAP@R']:.3f} / {values[p]['R@10']:.3f}" for p in parts]
        print(f"| {way} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
