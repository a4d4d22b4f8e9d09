"""Fixtures shared by every layer: real sample photos and small stores built from them."""

from __future__ import annotations

import importlib.resources
import shutil
from pathlib import Path

import pytest

# Real photographs that ship inside the scikit-image wheel (no download needed).
SAMPLE_DIR = Path(str(importlib.resources.files("skimage") / "data"))
SAMPLE_PHOTOS = ("chelsea.png", "rocket.jpg", "coffee.png", "astronaut.png", "moon.png")


@pytest.fixture
def photos() -> dict[str, Path]:
    found = {name: SAMPLE_DIR / name for name in SAMPLE_PHOTOS}
    missing = [name for name, path in found.items() if not path.is_file()]
    assert not missing, f"scikit-image sample photos missing: {missing}"
    return found


@pytest.fixture
def store(tmp_path: Path, photos: dict[str, Path]) -> Path:
    """A store with two photos at the top, one in a folder, and a text file."""
    root = tmp_path / "store"
    (root / "animals").mkdir(parents=True)
    shutil.copy(photos["rocket.jpg"], root / "rocket.jpg")
    shutil.copy(photos["coffee.png"], root / "coffee.png")
    shutil.copy(photos["chelsea.png"], root / "animals" / "cat.png")
    (root / "notes.txt").write_text("not an image\n")
    return root
