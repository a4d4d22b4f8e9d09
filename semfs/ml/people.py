"""People in a photo: how many, and how large (issue 20, facet 1).

The ImageNet classifier that captions offline has no "person" class, so people are found
apart: OpenCV's Haar cascade for frontal faces (haarcascade_frontalface_alt2, trained by
OpenCV and shipped inside the opencv-python-headless wheel: nothing comes from a model
hub). It was chosen by measurement (scripts/eval_people.py, docs/facets-detectors.md):
on 71 public photos labelled by hand before any detector ran, it had the best precision
of the candidates that install cleanly beside torch and numpy 2. Ingest runs it at 320
pixels on the 384-pixel image it already decodes, ~12 ms of CPU an image. It sees faces:
people seen from behind, from far away (a face under 7.5% of the longer side at 320
pixels) or in profile are missed, so "no people" means "no face found", not "nobody there".

OpenCV 5 dropped the cascades (and HOG): the dependency is opencv-python-headless < 5.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from semfs.errors import ModelError
from semfs.ml.lazy import Lazy

# Measured on the pipeline's 384-pixel images (docs/facets-detectors.md): faces from 24
# pixels found the same photos as from 20 (the cascade's window) for 80% of the time.
# Steps of 1.3 between face sizes with 3 neighbours cost 11-13 ms of CPU an image against
# 27-33 for 1.1 with 5, and found the same labelled photos (6 of 13, no false alarm, on
# the ingest's 384-pixel decode; 2026-12-07, docs/facets.md "People"): a coarser step
# finds each face at fewer sizes, so fewer neighbours are asked for.
DETECT_SIDE = 384  # pixels on the longer side the detector looks at
SCALE_STEP = 1.3  # the cascade's step between the face sizes it tries
NEIGHBOURS = 3  # overlapping detections a face needs (OpenCV's minNeighbors)
MIN_FACE = 24  # the smallest face, in pixels at DETECT_SIDE: 6% of the image's longer side
PORTRAIT_FACE = 0.15  # a lone face this tall (of the image's height): head and shoulders
CASCADE = "haarcascade_frontalface_alt2.xml"
MODEL_NAME = f"opencv-haar:{CASCADE.removesuffix('.xml')}"

Gray = np.ndarray[Any, np.dtype[np.uint8]]


@dataclass(frozen=True)
class People:
    """The people found in one image: a face's size is its height over the image's."""

    face_sizes: tuple[float, ...] = ()  # largest first, each in (0, 1]

    @property
    def count(self) -> int:
        return len(self.face_sizes)

    @property
    def largest(self) -> float:
        return self.face_sizes[0] if self.face_sizes else 0.0


NOBODY = People()

_NUMBERS = {2: "two people", 3: "three people"}


def people_words(people: People) -> str | None:
    """Words for a caption: "a portrait", "a person", "two people", "a group of people"."""
    if people.count == 0:
        return None
    if people.count == 1:
        return "a portrait" if people.largest >= PORTRAIT_FACE else "a person"
    return _NUMBERS.get(people.count, "a group of people")


def people_keyword(people: People) -> str | None:
    """The keyword under tags/: "people" for any photo with a person in it."""
    return "people" if people.count else None


class PeopleDetector:
    """Frontal faces by OpenCV's Haar cascade. Safe to share between threads."""

    def __init__(
        self, side: int = DETECT_SIDE, min_neighbours: int = NEIGHBOURS, step: float = SCALE_STEP
    ) -> None:
        self.side = side
        self.min_neighbours = min_neighbours
        self.step = step
        self._local = threading.local()  # a cascade per thread: not documented thread-safe
        self._cascade()  # load (and check) the model now, in the caller's thread

    def _cascade(self) -> Any:
        cascade = getattr(self._local, "cascade", None)
        if cascade is None:
            try:
                import cv2
            except ImportError as error:
                raise ModelError(
                    "the people detector needs OpenCV: pip install 'opencv-python-headless<5'"
                ) from error
            data = getattr(cv2, "data", None)
            if data is None or not hasattr(cv2, "CascadeClassifier"):
                raise ModelError(
                    f"OpenCV {cv2.__version__} has no Haar cascades (OpenCV 5 dropped them): "
                    "pip install 'opencv-python-headless<5'"
                )
            cascade = cv2.CascadeClassifier(data.haarcascades + CASCADE)
            if cascade.empty():
                raise ModelError(f"OpenCV's {CASCADE} is missing from {data.haarcascades}")
            self._local.cascade = cascade
        return cascade

    def detect(self, image: Image.Image) -> People:
        """Faces in `image` (any mode and size); a too small image has nobody."""
        gray = _gray(image, self.side)
        if gray is None:
            return NOBODY
        import cv2

        boxes = self._cascade().detectMultiScale(
            cv2.equalizeHist(gray),
            scaleFactor=self.step,
            minNeighbors=self.min_neighbours,
            minSize=(MIN_FACE, MIN_FACE),
        )
        height = gray.shape[0]
        sizes = sorted((min(1.0, float(h) / height) for _x, _y, _w, h in boxes), reverse=True)
        return People(tuple(round(size, 3) for size in sizes))


def _gray(image: Image.Image, side: int) -> Gray | None:
    """8-bit grey at most `side` pixels on its longer side, or None if smaller than a face."""
    if min(image.size) < MIN_FACE:
        return None
    if image.mode in _PREMULTIPLIED:  # Pillow converts these only to their plain twin
        image = image.convert(_PREMULTIPLIED[image.mode])
    if max(image.size) > side:
        image = image.copy()
        image.thumbnail((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    if image.mode in {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}:
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) * (255.0 / (high - low)) if high > low else values * 0
        gray: Gray = scaled.astype(np.uint8)
    else:
        try:
            if image.mode not in {"L", "RGB"}:
                # Transparency over white, as a viewer shows it; CMYK, palette, ... to RGB.
                if "A" in image.getbands() or "transparency" in image.info:
                    rgba = image.convert("RGBA")
                    image = Image.new("RGBA", rgba.size, "white")
                    image.alpha_composite(rgba)
                image = image.convert("RGB")
            gray = np.asarray(image.convert("L"), dtype=np.uint8)
        except ValueError:  # a mode Pillow cannot make grey (none known): nobody seen
            return None
    if min(gray.shape) < MIN_FACE:
        return None
    return np.ascontiguousarray(gray)


_PREMULTIPLIED = {"La": "LA", "RGBa": "RGBA"}

_shared = Lazy(PeopleDetector)


def detect_people(image: Image.Image) -> People:
    """The people in `image`, by a detector loaded once per process."""
    return _shared.get().detect(image)
