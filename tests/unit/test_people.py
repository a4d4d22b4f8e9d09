"""The people detector on real photos with its real model (OpenCV's packaged cascade)."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from semfs.ml.people import (
    NOBODY,
    People,
    PeopleDetector,
    detect_people,
    people_keyword,
    people_words,
)

skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(skimage_data.astronaut())


def test_a_photo_of_a_woman_has_one_person(astronaut: Image.Image) -> None:
    people = detect_people(astronaut)
    assert people.count == 1
    assert 0.1 < people.largest < 0.4  # her face is about a fifth of the photo's height
    assert people_keyword(people) == "people"


def test_a_close_portrait_is_called_a_portrait() -> None:
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    with Image.open(path) as image:
        people = detect_people(image)
    assert people.count == 1
    assert people_words(people) == "a portrait"


@pytest.mark.parametrize("name", ["coffee", "chelsea", "rocket"])
def test_photos_without_people_have_none(name: str) -> None:
    people = detect_people(Image.fromarray(getattr(skimage_data, name)()))
    assert people == NOBODY
    assert people_words(people) is None
    assert people_keyword(people) is None


def test_two_copies_of_a_face_side_by_side_are_two_people(astronaut: Image.Image) -> None:
    pair = Image.new("RGB", (astronaut.width * 2, astronaut.height))
    pair.paste(astronaut, (0, 0))
    pair.paste(astronaut, (astronaut.width, 0))
    people = PeopleDetector(side=1024).detect(pair)
    assert people.count == 2
    assert people_words(people) == "two people"


@pytest.mark.parametrize("mode", ["L", "CMYK", "P", "RGBA", "LA", "La", "RGBa", "I;16", "F"])
def test_any_image_mode_is_read(astronaut: Image.Image, mode: str) -> None:
    via = {"I;16": "L", "La": "LA"}.get(mode, "RGB")  # Pillow makes these from one mode
    image = astronaut.convert(via).convert(mode)
    assert detect_people(image).count == 1


@pytest.mark.parametrize("size", [(1, 1), (19, 300), (0, 0)])
def test_images_too_small_for_a_face_have_nobody(size: tuple[int, int]) -> None:
    assert detect_people(Image.new("RGB", size)) == NOBODY


def test_a_huge_image_is_downscaled_first(astronaut: Image.Image) -> None:
    huge = astronaut.resize((4096, 4096), Image.Resampling.NEAREST)
    assert detect_people(huge).count == 1


def test_a_flat_image_has_nobody() -> None:
    assert detect_people(Image.fromarray(np.full((300, 400), 128, np.uint8))) == NOBODY


@pytest.mark.parametrize(
    ("sizes", "words"),
    [
        ((), None),
        ((0.05,), "a person"),
        ((0.5,), "a portrait"),
        ((0.3, 0.2), "two people"),
        ((0.1, 0.1, 0.1), "three people"),
        ((0.1,) * 7, "a group of people"),
    ],
)
def test_words_follow_the_count_and_sizes(sizes: tuple[float, ...], words: str | None) -> None:
    assert people_words(People(sizes)) == words


def test_the_evaluation_scores_photos_from_their_labels() -> None:
    """scripts/eval_people.py on two labelled photos: the sums and the table are right."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    import eval_people
    from facets_data import load

    images = [
        (name, label, eval_people.fit(load(name), 384))
        for name, label in (("skimage:astronaut.png", True), ("skimage:coffee.png", False))
    ]
    result = eval_people.evaluate("semfs.ml.people", eval_people.semfs_people(), images)
    assert (result["tp"], result["fp"], result["fn"], result["tn"]) == (1, 0, 0, 1)
    meta = {"date": "now", "images": 2, "positives": 1, "max_side": 384, "threads": 2,
            "load": 0.0, "cpus": 2}  # fmt: skip
    assert "| semfs.ml.people | 1.0 | 1.0 | 1 | 0 | 0 | 1 |" in eval_people.markdown([result], meta)
