"""The tags view's words, before and after tags came from labels (docs/evaluation.md).

    .venv/bin/python scripts/eval_tags.py [--datasets tuxpaint photos] [--sample 25]

Each photo of the evaluation sets (scripts/eval_retrieval.py's stores) is decoded as
ingest decodes it and captioned by the default captioner; its keywords are taken both
ways from the same caption: *before*, YAKE over the caption's text (what
ingest/descriptions.py did), *after*, the description ingest makes now (the labels'
tags, YAKE only for a description stored in the file). Printed per set: photos, distinct
tags, tags on a single photo and their share, tags per photo, the time per photo of
each way, the most common tags and a sample of the single-photo ones.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from eval_retrieval import DATASETS, STAMPS

from semfs.config import Settings
from semfs.ingest.descriptions import model_description
from semfs.ml.captioner import make_captioner
from semfs.ml.imaging import DecodedImage, decode
from semfs.ml.keywords import keywords

BATCH = 8


def yake_keywords(caption: str, image: DecodedImage) -> list[str]:
    """The keywords as ingest made them before: YAKE over every text."""
    if image.embedded_caption is None:
        return keywords(caption)
    return list(dict.fromkeys(keywords(image.embedded_caption) + keywords(caption)))


def label_keywords(caption: str, image: DecodedImage) -> list[str]:
    return model_description(caption, "classifier", image).keywords


def photos_of(dataset: str, store: Path) -> list[Path]:
    DATASETS[dataset](store, False)
    return sorted(path for path in store.rglob("*.jpg"))


def measure(
    name: str, tags_of: Callable[[str, DecodedImage], list[str]],
    captions: list[str], images: list[DecodedImage], sample: int,
) -> dict[str, object]:  # fmt: skip
    started = time.perf_counter()
    per_photo = [tags_of(caption, image) for caption, image in zip(captions, images, strict=True)]
    seconds = time.perf_counter() - started
    counts = Counter(tag for tags in per_photo for tag in set(tags))
    single = sorted(tag for tag, count in counts.items() if count == 1)
    picked = sorted(random.Random(0).sample(single, min(sample, len(single))))
    return {
        "way": name,
        "tags": len(counts),
        "single": len(single),
        "share": len(single) / max(1, len(counts)),
        "per_photo": sum(map(len, per_photo)) / max(1, len(per_photo)),
        "ms": 1000 * seconds / max(1, len(per_photo)),
        "common": ", ".join(f"{tag} {count}" for tag, count in counts.most_common(15)),
        "sample": ", ".join(picked),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["tuxpaint", "photos"])
    parser.add_argument("--sample", type=int, default=25)
    args = parser.parse_args()
    captioner = make_captioner(Settings(store=Path(".")).captioner)
    keywords("a warm-up, so that neither way pays for loading")
    rows = []
    for dataset in args.datasets:
        if dataset == "tuxpaint" and not STAMPS.is_dir():
            print("tuxpaint skipped: apt-get install tuxpaint-stamps-default")
            continue
        with tempfile.TemporaryDirectory() as directory:
            store = Path(directory)
            paths = photos_of(dataset, store)
            settings = Settings(store=store)
            limits = settings.max_image_pixels, settings.max_full_decode_pixels
            images = []
            for path in paths:
                with path.open("rb") as file:
                    images.append(decode(file, *limits))
        captions: list[str] = []
        for start in range(0, len(images), BATCH):
            batch = images[start : start + BATCH]
            captions.extend(captioner.caption([image.image for image in batch]))
        for way, tags_of in (("before (YAKE)", yake_keywords), ("after (labels)", label_keywords)):
            row = measure(way, tags_of, captions, images, args.sample)
            rows.append((dataset, len(images), row))
    print(f"captioner {captioner.name}\n")
    print("| Set (photos) | Tags from | Tags | On one photo | Tags / photo | ms / photo |")
    print("|---|---|--:|--:|--:|--:|")
    for dataset, count, row in rows:
        print(f"| {dataset} ({count}) | {row['way']} | {row['tags']} | {row['single']} "
              f"({row['share']:.0%}) | {row['per_photo']:.1f} | {row['ms']:.2f} |")  # fmt: skip
    for dataset, _count, row in rows:
        print(f"\n{dataset}, {row['way']}:\n- most common: {row['common']}")
        print(f"- on one photo (a sample): {row['sample']}")


if __name__ == "__main__":
    main()
