"""Fill a directory with real sample photos that ship inside the scikit-image wheel.

    python scripts/make_demo_store.py DEST

Existing files in DEST are left alone, so running it again is harmless.
"""

from __future__ import annotations

import argparse
import importlib.resources
import shutil
import sys
from pathlib import Path

# (file in skimage/data, where it goes in the store)
PHOTOS: tuple[tuple[str, str], ...] = (
    ("chelsea.png", "animals/cat-chelsea.png"),
    ("horse.png", "animals/horse-silhouette.png"),
    ("astronaut.png", "space/astronaut.png"),
    ("rocket.jpg", "space/rocket.jpg"),
    ("moon.png", "space/moon.png"),
    ("hubble_deep_field.jpg", "space/hubble-deep-field.jpg"),
    ("camera.png", "everyday/cameraman.png"),
    ("coffee.png", "everyday/coffee.png"),
    ("coins.png", "everyday/coins.png"),
    ("motorcycle_left.png", "everyday/motorcycle.png"),
    ("retina.jpg", "everyday/retina.jpg"),
    ("page.png", "everyday/book-page.png"),
    ("text.png", "everyday/text.png"),
    ("brick.png", "textures/brick.png"),
    ("grass.png", "textures/grass.png"),
    ("gravel.png", "textures/gravel.png"),
)


def make_store(dest: Path) -> int:
    """Copy the photos into `dest`; return how many were copied now."""
    source = importlib.resources.files("skimage") / "data"
    copied = 0
    for name, target in PHOTOS:
        original = source / name
        path = dest / target
        if path.exists():
            continue
        if not original.is_file():
            print(f"warning: {name} is not in {source}; skipped", file=sys.stderr)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        with importlib.resources.as_file(original) as file:
            shutil.copyfile(file, path)
        copied += 1
    return copied


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path, help="the store directory (created if missing)")
    args = parser.parse_args()
    copied = make_store(args.dest)
    total = sum(1 for p in args.dest.rglob("*") if p.is_file() and ".semfs" not in p.parts)
    print(f"{args.dest}: copied {copied} photos ({total} files in the store)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
