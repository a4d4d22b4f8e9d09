"""Labelled public images for the people and text detectors' evaluations (issue 20)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent


def _skimage_dir() -> Path:
    import skimage.data

    return Path(os.path.dirname(skimage.data.__file__))


def _matplotlib_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()).parent


def _sklearn_dir() -> Path:
    import sklearn.datasets

    return Path(os.path.dirname(sklearn.datasets.__file__)) / "images"


def resolve(name: str) -> Path:
    """The file behind a label's image name (``source:path``), without any frame suffix."""
    source, _, rest = name.partition(":")
    rest = rest.split("#", 1)[0]
    if source == "skimage":
        return _skimage_dir() / rest
    if source == "matplotlib":
        return _matplotlib_dir() / rest
    if source == "sklearn":
        return _sklearn_dir() / rest
    if source in {"opencv-doc", "mate-backgrounds"}:
        return Path(rest)
    raise ValueError(f"unknown image source in {name!r}")


def load(name: str) -> Image.Image:
    """The image named by a label: a file, or ``video#frame`` for a frame of a video."""
    path = resolve(name)
    if "#" in name:
        import cv2

        frame_number = int(name.rsplit("#", 1)[1])
        capture = cv2.VideoCapture(str(path))
        try:
            capture.set(cv2.CAP_PROP_POS_FRAMES, frame_number)
            ok, frame = capture.read()
        finally:
            capture.release()
        if not ok:
            raise OSError(f"cannot read frame {frame_number} of {path}")
        return Image.fromarray(np.ascontiguousarray(frame[:, :, ::-1]))
    with Image.open(path) as image:
        image.load()
        return image.copy()


def people_labels() -> list[tuple[str, bool, str]]:
    """(image name, has people, note) rows of people.tsv."""
    rows = []
    for line in (HERE / "people.tsv").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, label, note = [*line.split("\t"), ""][:3]
        rows.append((name, label == "1", note))
    return rows


def text_labels() -> list[tuple[str, bool, str, str]]:
    """(image name, has text, the words a reader sees, note) rows of text.tsv."""
    rows = []
    for line in (HERE / "text.tsv").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, label, words, note = [*line.split("\t"), "", "", ""][:4]
        rows.append((name, label == "1", words, note))
    return rows
