"""Facets through a real mount, on real photos given EXIF as a camera writes it: a red
object found by its colour, a night photo by its time, a photo with the GPS position of
a known city under places/ and by place:, one taken at sea in no place."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.fs.conftest import Mount, checked_mount
from tests.fs.test_search import expect_errno, unranked, wait_indexed


def _dms(value: float) -> tuple[float, float, float]:
    value = abs(value)
    degrees, minutes = int(value), int(value * 60) % 60
    return float(degrees), float(minutes), round((value * 3600) % 60, 4)


def save_as_camera(source: Path, target: Path, taken: str | None,
                   position: tuple[float, float] | None = None) -> None:  # fmt: skip
    """A copy of a real photo as a JPEG with DateTimeOriginal and a GPS position."""
    exif = Image.Exif()
    if taken is not None:
        exif.get_ifd(0x8769)[0x9003] = taken
    if position is not None:
        gps = exif.get_ifd(0x8825)
        latitude, longitude = position
        gps[1], gps[2] = "N" if latitude >= 0 else "S", _dms(latitude)
        gps[3], gps[4] = "E" if longitude >= 0 else "W", _dms(longitude)
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.open(source).convert("RGB").save(target, "JPEG", exif=exif, quality=90)


@pytest.fixture
def mount(tmp_path: Path, photos: dict[str, Path]) -> Iterator[Mount]:
    store = tmp_path / "store"
    store.mkdir()
    Image.open(photos["coffee.png"]).save(store / "coffee.png")  # a red cup, no EXIF
    save_as_camera(photos["rocket.jpg"], store / "launch.jpg", "2024:07:14 23:30:00")
    save_as_camera(photos["chelsea.png"], store / "trip" / "cat.jpg", "2023:08:20 10:15:00",
                   (41.8986, 12.4769))  # the Pantheon, Rome  # fmt: skip
    save_as_camera(photos["astronaut.png"], store / "astronaut.jpg", "2023:01:05 15:00:00",
                   (41.0, 11.5))  # the Tyrrhenian sea, 100 km off the coast  # fmt: skip
    with checked_mount(store, tmp_path) as mounted:
        wait_indexed(mounted, 4)
        yield mounted


def listed(mount: Mount, *parts: str) -> list[str]:
    names = os.listdir(mount.mountpoint.joinpath(*parts))
    return unranked(names) if parts[0] == "search" else sorted(names)


def test_colour_time_and_place_through_the_mount(mount: Mount) -> None:
    mnt = mount.mountpoint
    # Colour: a filter and a tag (by default not words of the caption: docs/facets.md).
    assert listed(mount, "search", "colour:red") == ["coffee.png"]
    assert listed(mount, "search", "color:red") == ["coffee.png"]
    assert "coffee.png" in listed(mount, "tags", "red")
    assert "red" in json.loads(os.getxattr(mnt / "coffee.png", "user.semfs.keywords"))
    expect_errno(22, os.listdir, mnt / "search" / "colour:mauve")  # EINVAL: not a colour

    # Time: the caption says when, the filters find it by month and date.
    caption = os.getxattr(mnt / "launch.jpg", "user.semfs.caption").decode()
    assert caption.endswith(", at night"), caption  # no GPS: no season
    assert "summer" not in caption
    assert listed(mount, "search", "month:7") == ["launch.jpg"]
    assert listed(mount, "search", "month:july") == ["launch.jpg"]
    assert listed(mount, "search", "date:2024-07-14") == ["launch.jpg"]
    assert listed(mount, "search", "date:2024-07..2024-08") == ["launch.jpg"]
    assert listed(mount, "search", "date:2024-07-15") == []
    assert listed(mount, "search", "month:8") == ["cat.jpg"]

    # Place: the caption, the filter, the places/ view; the photo at sea is in none.
    caption = os.getxattr(mnt / "trip" / "cat.jpg", "user.semfs.caption").decode()
    assert caption.endswith(", in the morning in summer, in Rome, Italy"), caption
    sea = os.getxattr(mnt / "astronaut.jpg", "user.semfs.caption").decode()
    assert ", in the afternoon in winter" in sea, sea  # a season, as it has GPS
    assert listed(mount, "search", "place:rome") == ["cat.jpg"]
    assert listed(mount, "search", "place:italy month:8") == ["cat.jpg"]
    assert listed(mount, "places") == ["Italy"]
    assert listed(mount, "places", "Italy") == ["Rome"]
    assert listed(mount, "places", "Italy", "Rome") == ["cat.jpg"]
    assert (mnt / "places" / "Italy").stat().st_size == 1
    rome = mnt / "places" / "Italy" / "Rome" / "cat.jpg"
    assert rome.read_bytes() == (mnt / "trip" / "cat.jpg").read_bytes()
    assert os.getxattr(rome, "user.semfs.path") == b"trip/cat.jpg"
    assert "rome" in listed(mount, "tags") and "cat.jpg" in listed(mount, "tags", "italy")
    expect_errno(2, os.listdir, mnt / "places" / "France")  # ENOENT
    expect_errno(2, os.listdir, mnt / "places" / "Italy" / "Paris")
    expect_errno(30, os.mkdir, mnt / "places" / "Spain")  # EROFS
