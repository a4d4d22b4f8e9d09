"""Do facet words dilute captions? Object retrieval with and without them, in one run.

The harness of scripts/eval_retrieval.py (the same data, queries, decode, default
captioner and embedder, exact ranking) scores the captions as they are and with the
words each facet would add: the photos' own dominant colours ("mostly red and white",
ml/colours.py), and a time of day and a place. The evaluation photos carry no EXIF time
or GPS, so those two are given to every photo by a fixed rule (its index picks one of
the four parts of the day and one of eight cities): words unrelated to what the photo
shows, which a query that names a time ("a rocket at night") can be misled by, as it
would be by wrong EXIF. The same words for every photo ("in the afternoon", "in Rome,
Italy") measure the dilution alone: how far words move a caption from its objects.
People words ("a person", "a portrait") are the photos' own, from faces found
(ml/people.py at ingest's 320 pixels), as ingest adds them by default; so are the text
words, read as the idle pass reads them (the cheap test, then OCR at up to 2,048 px).

    .venv/bin/python scripts/eval_facets.py [--output docs/facets-retrieval.md]
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import eval_retrieval as harness

from semfs.config import Settings
from semfs.ingest.facets import PEOPLE_SIDE
from semfs.ml.colours import dominant_colours
from semfs.ml.embedder import embedder_factory
from semfs.ml.imaging import decode
from semfs.ml.ocr import OCR_MAX_SIDE, probably_has_text, read_text
from semfs.ml.people import PeopleDetector, people_words

_PERIODS = ("in the morning", "in the afternoon", "in the evening", "at night")
_CITIES = ("in Rome, Italy", "in Paris, France", "in Berlin, Germany", "in London, United "
           "Kingdom", "in Tokyo, Japan", "in Sydney, Australia", "in New York City, United "
           "States", "in Cairo, Egypt")  # fmt: skip


def colour_words(image: object) -> str:
    names = dominant_colours(image)  # type: ignore[arg-type]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"mostly {listed}"


def words_read(path: Path) -> str:
    """The words the idle text pass would add: the cheap test, then OCR (ml/ocr.py)."""
    with path.open("rb") as file:
        image = decode(file, 250_000_000, 100_000_000, side=OCR_MAX_SIDE).image
    return read_text(image) if probably_has_text(image) else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, help="write the Markdown table here")
    parser.add_argument("--datasets", nargs="+", default=list(harness.DATASETS))
    args = parser.parse_args()
    captioner = "classifier:efficientnet-lite0"  # the default (Settings.captioner)
    embedder = embedder_factory(Settings(store=Path("/nonexistent")).embedder)()
    rows = []
    with tempfile.TemporaryDirectory(prefix="semfs-eval-facets-") as temporary:
        for dataset in args.datasets:
            if dataset == "tuxpaint" and not harness.STAMPS.is_dir():
                continue
            store = Path(temporary) / dataset
            raw = harness.DATASETS[dataset](store, False)
            paths = sorted(str(p.relative_to(store)) for p in store.rglob("*.jpg"))
            images = harness.decoded_images(store, paths)
            base = harness.caption_variants([captioner], images)[0][captioner]
            colours = [colour_words(image) for image in images]
            detector = PeopleDetector(side=PEOPLE_SIDE)
            people = [people_words(detector.detect(image)) for image in images]
            print(dataset, sum(1 for p in people if p), "of", len(images), "with people words",
                  flush=True)  # fmt: skip
            times = [_PERIODS[i % 4] for i in range(len(paths))]
            places = [_CITIES[(i * 3) % len(_CITIES)] for i in range(len(paths))]
            texts = [words_read(store / path) for path in paths]
            print(dataset, sum(1 for t in texts if t), "of", len(images), "with text words",
                  flush=True)  # fmt: skip
            variants = {
                "caption only": base,
                "+ colour words": [f"{c}, {w}" for c, w in zip(base, colours, strict=True)],
                "+ time words": [f"{c}, {w}" for c, w in zip(base, times, strict=True)],
                "+ place words": [f"{c}, {w}" for c, w in zip(base, places, strict=True)],
                "+ the same time words for all": [f"{c}, in the afternoon" for c in base],
                "+ the same place words for all": [f"{c}, in Rome, Italy" for c in base],
                "+ time and place": [f"{c}, {t}, {p}"
                                     for c, t, p in zip(base, times, places, strict=True)],
                "+ all three": [f"{c}, {w}, {t}, {p}" for c, w, t, p
                                in zip(base, colours, times, places, strict=True)],
                "+ people words (where faces are found)": [
                    f"{c}, {p}" if p else c for c, p in zip(base, people, strict=True)],
                "+ text words (read, where any)": [
                    f"{c}, with the text: {' '.join(t.split()[:40])}" if t else c
                    for c, t in zip(base, texts, strict=True)],
                "+ time, place and people": [
                    f"{c}, {t}, {p}" + (f", {w}" if w else "")
                    for c, t, p, w in zip(base, times, places, people, strict=True)],
            }  # fmt: skip
            sets = harness.query_sets(raw, paths)
            for name, captions in variants.items():
                result = harness.evaluate(sets, embedder.embed(captions), embedder, 25, 10_000)
                scores = {s.kind: result[s.kind]["mAP@R"] for s in sets}
                rows.append((dataset, name, scores))
                print(dataset, name, {k: round(v, 3) for k, v in scores.items()}, flush=True)
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Measured {when}: mAP@R, default captioner ({captioner}) and embedder, exact "
        "ranking (scripts/eval_facets.py).",
        "",
        "| data | captions | " + " | ".join(rows[0][2]) + " |" if rows else "",
    ]
    for dataset in dict.fromkeys(row[0] for row in rows):
        mine = [row for row in rows if row[0] == dataset]
        kinds = list(mine[0][2])
        if lines[-1].startswith("| data"):
            lines.append("| --- | --- |" + " ---: |" * len(kinds))
        else:
            lines += ["", "| data | captions | " + " | ".join(kinds) + " |",
                      "| --- | --- |" + " ---: |" * len(kinds)]  # fmt: skip
        first = mine[0][2]
        for _, name, scores in mine:
            cells = [f"{scores[k]:.3f}" + ("" if name == "caption only" else
                     f" ({scores[k] - first[k]:+.3f})") for k in kinds]  # fmt: skip
            lines.append(f"| {dataset} | {name} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    if args.output:
        args.output.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
