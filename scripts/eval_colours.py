"""Dominant colours (semfs/ml/colours.py) against hand labels: precision and recall per colour.

The labels below were written by looking at the photos only (a contact sheet of 220 px
thumbnails), before the colour code had run on any of them (committed first, 2026-12-06
~23:18 UTC: see git log), and not changed after seeing its output; the code was not tuned
on them. A photo's label is the palette colours that cover roughly a sixth of it or more,
at most three. Photos: the evaluation set of
scripts/eval_photos.py (scikit-image's, OpenCV's and MATE's).

    .venv/bin/python scripts/eval_colours.py [--table docs/facets-colours.md]
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import eval_photos
from PIL import Image

from semfs.ml.colours import PALETTE, dominant_colours
from semfs.ml.imaging import decode

LABELS: dict[str, tuple[str, ...]] = {
    "astronaut.png": ("orange", "grey", "white"),
    "camera.png": ("grey", "black", "white"),
    "chelsea.png": ("brown", "orange"),
    "clock_motion.png": ("grey",),
    "coffee.png": ("brown", "red"),
    "coins.png": ("black", "grey"),
    "grass.png": ("grey",),
    "gravel.png": ("grey",),
    "brick.png": ("grey",),
    "hubble_deep_field.jpg": ("black",),
    "moon.png": ("grey",),
    "motorcycle_left.png": ("grey", "brown", "red"),
    "page.png": ("white", "grey"),
    "retina.jpg": ("orange", "red", "black"),
    "rocket.jpg": ("blue", "black"),
    "ihc.png": ("brown", "white"),
    "text.png": ("grey", "white"),
    "apple.jpg": ("red", "green"),
    "baboon.jpg": ("green", "yellow", "blue"),
    "butterfly.jpg": ("green", "black", "white"),
    "fruits.jpg": ("orange", "yellow", "green"),
    "home.jpg": ("blue", "yellow"),
    "messi5.jpg": ("green", "black"),
    "orange.jpg": ("orange", "yellow", "green"),
    "building.jpg": ("white", "grey", "green"),
    "aero1.jpg": ("grey", "green"),
    "leuvenA.jpg": ("brown", "grey"),
    "basketball1.png": ("grey", "white"),
    "board.jpg": ("green",),
    "starry_night.jpg": ("blue",),
    "squirrel_cls.jpg": ("green", "brown"),
    "smarties.png": ("white",),
    "graf1.png": ("red", "white", "grey"),
    "box_in_scene.png": ("grey", "black"),
    "licenseplate_motion.jpg": ("grey", "blue"),
    "text_defocus.jpg": ("white", "grey"),
    "stuff.jpg": ("grey",),
    "chicky_512.png": ("brown", "black"),
    "rubberwhale1.png": ("blue", "orange", "brown"),
    "aloeL.jpg": ("white", "green"),
    "ela_original.jpg": ("black",),
    "plant.jpg": ("green", "brown"),
    "Aqua.jpg": ("blue", "grey"),
    "Blinds.jpg": ("green",),
    "Dune.jpg": ("yellow", "brown", "blue"),
    "FreshFlower.jpg": ("orange", "red"),
    "Garden.jpg": ("orange", "red", "green"),
    "GreenMeadow.jpg": ("green",),
    "LadyBird.jpg": ("green",),
    "RainDrops.jpg": ("green",),
    "Storm.jpg": ("blue", "black", "grey"),
    "TwoWings.jpg": ("orange", "green"),
    "Wood.jpg": ("white", "grey"),
    "YellowFlower.jpg": ("yellow", "black"),
}


def photo_paths() -> list[Path]:
    paths: list[Path] = []
    try:
        import skimage

        data = Path(skimage.__file__).parent / "data"
        paths += [data / name for name in eval_photos.SKIMAGE_PHOTOS]
    except ImportError:
        pass
    paths += [eval_photos.OPENCV / name for name in eval_photos.OPENCV_PHOTOS]
    paths += [eval_photos.MATE / name for name in eval_photos.MATE_PHOTOS]
    return [path for path in paths if path.exists() and path.name in LABELS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", type=Path, help="write the Markdown table here")
    args = parser.parse_args()
    counts = {name: [0, 0, 0] for name in PALETTE}  # true positives, false pos., false neg.
    exact, seconds, rows = 0, 0.0, []
    paths = photo_paths()
    for path in paths:
        with path.open("rb") as file:
            image: Image.Image = decode(file, 250_000_000, 100_000_000).image
        started = time.perf_counter()
        found = set(dominant_colours(image))
        seconds += time.perf_counter() - started
        wanted = set(LABELS[path.name])
        exact += found == wanted
        for name in PALETTE:
            counts[name][0] += name in found and name in wanted
            counts[name][1] += name in found and name not in wanted
            counts[name][2] += name not in found and name in wanted
        rows.append(f"{path.name}: labelled {sorted(wanted)}, found {sorted(found)}")
    print("\n".join(rows))
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Measured {when} on {len(paths)} photos (scripts/eval_photos.py's set), "
        f"{seconds / max(1, len(paths)) * 1000:.2f} ms a photo on the 384 px decode; "
        f"{exact} of {len(paths)} photos got exactly their labelled set.",
        "",
        "| colour | labelled | found | precision | recall |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    total = [0, 0, 0]
    for name in PALETTE:
        tp, fp, fn = counts[name]
        total = [a + b for a, b in zip(total, counts[name], strict=True)]
        precision = f"{tp / (tp + fp):.2f}" if tp + fp else "-"
        recall = f"{tp / (tp + fn):.2f}" if tp + fn else "-"
        lines.append(f"| {name} | {tp + fn} | {tp + fp} | {precision} | {recall} |")
    tp, fp, fn = total
    lines.append(f"| all (micro) | {tp + fn} | {tp + fp} | {tp / max(1, tp + fp):.2f} | "
                 f"{tp / max(1, tp + fn):.2f} |")  # fmt: skip
    print("\n".join(lines))
    if args.table:
        args.table.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
