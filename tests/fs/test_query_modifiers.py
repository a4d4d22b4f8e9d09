"""Queries with modifiers through the mount: exclusions, k, cut, order and filters on
EXIF and file metadata; a bad modifier is EINVAL with a log line saying why."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.fs.conftest import Mount, checked_mount, semfs
from tests.fs.test_search import expect_errno, ranked, results, unranked, wait_indexed


def save_with_exif(source: Path, target: Path, make: str, model: str, taken: str) -> None:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = make, model
    exif.get_ifd(0x8769)[0x9003] = taken  # DateTimeOriginal
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.open(source).convert("RGB").save(target, "JPEG", exif=exif, quality=90)


def year_ns(year: int) -> int:
    return (year - 1970) * 365 * 86400 * 10**9 + 200 * 86400 * 10**9  # mid-year, roughly


@pytest.fixture
def photo_store(tmp_path: Path, photos: dict[str, Path]) -> Path:
    store = tmp_path / "store"
    save_with_exif(photos["rocket.jpg"], store / "rocket.jpg", "Canon", "Canon EOS 5D",
                   "2019:05:01 10:00:00")  # fmt: skip
    save_with_exif(photos["chelsea.png"], store / "animals" / "cat.jpg", "NIKON CORPORATION",
                   "NIKON D750", "2023:08:20 17:30:00")  # fmt: skip
    Image.open(photos["coffee.png"]).save(store / "coffee.png")  # no EXIF: the file's time
    os.utime(store / "coffee.png", ns=(year_ns(2021), year_ns(2021)))
    (store / "holiday 2022").mkdir()
    Image.open(photos["astronaut.png"]).save(store / "holiday 2022" / "astronaut.png")
    os.utime(store / "holiday 2022" / "astronaut.png", ns=(year_ns(2022), year_ns(2022)))
    return store


@pytest.fixture
def mount(photo_store: Path, tmp_path: Path) -> Iterator[Mount]:
    with checked_mount(photo_store, tmp_path) as mounted:
        wait_indexed(mounted, 4)
        yield mounted


ALL = "a photo @t=2"  # a cut of 2 lets every image through: the modifiers decide


def test_k_cut_and_order(mount: Mount) -> None:
    assert len(results(mount, ALL)) == 4
    assert len(results(mount, "a photo @t=2 @k=2")) == 2
    assert results(mount, "a photo @t=0.01") == []  # nothing that close
    # Ranks follow the order asked for: a listing sorted by name shows it.
    assert results(mount, f"{ALL} @sort=name") == ranked("astronaut.png", "cat.jpg",
                                                          "coffee.png", "rocket.jpg")  # fmt: skip
    assert results(mount, f"{ALL} @sort=date") == ranked("cat.jpg", "astronaut.png",
                                                          "coffee.png", "rocket.jpg")  # fmt: skip
    assert results(mount, f"{ALL} @sort=oldest") == ranked("rocket.jpg", "coffee.png",
                                                            "astronaut.png", "cat.jpg")  # fmt: skip
    sizes = [(mount.mountpoint / "search" / f"{ALL} @sort=size" / name).stat().st_size
             for name in results(mount, f"{ALL} @sort=size")]  # fmt: skip
    assert sizes == sorted(sizes, reverse=True)


def test_filters_on_exif_and_file_metadata(mount: Mount) -> None:
    assert results(mount, f"{ALL} year:2019") == ["01 rocket.jpg"]  # EXIF DateTimeOriginal
    assert results(mount, f"{ALL} year:2021") == ["01 coffee.png"]  # no EXIF: the file's time
    assert sorted(unranked(results(mount, f"{ALL} year:2021-2023"))) == [
        "astronaut.png", "cat.jpg", "coffee.png"
    ]  # fmt: skip
    assert results(mount, f"{ALL} camera:nikon") == ["01 cat.jpg"]
    assert results(mount, f"{ALL} camera:EOS") == ["01 rocket.jpg"]
    assert results(mount, f"{ALL} in:holiday") == ["01 astronaut.png"]
    assert results(mount, f"{ALL} in:animals camera:canon") == []
    # Filters alone list the matching images themselves, newest first.
    assert results(mount, "year:2019-2023") == ranked("cat.jpg", "astronaut.png", "coffee.png",
                                                      "rocket.jpg")  # fmt: skip
    assert results(mount, "camera:nikon") == ["01 cat.jpg"]


def test_exclusion_leaves_out_what_a_word_would_find(mount: Mount) -> None:
    assert "cat.jpg" in unranked(results(mount, "a cat"))
    without = unranked(results(mount, f"{ALL} -cat"))
    assert "cat.jpg" not in without and "rocket.jpg" in without and "coffee.png" in without


def test_a_bad_modifier_is_einval_with_a_log_line(mount: Mount) -> None:
    search = mount.mountpoint / "search"
    expect_errno(errno.EINVAL, os.listdir, search / "snow @colour=red")
    expect_errno(errno.EINVAL, os.mkdir, search / "snow lens:50mm")
    expect_errno(errno.EINVAL, os.listdir, search / "snow @k=0")
    log = mount.log_text()
    assert "query 'snow @colour=red' refused (EINVAL): unknown modifier '@colour=red'" in log
    assert "unknown filter 'lens:50mm'" in log
    result = semfs("search", mount.store, "snow @sort=random", check=False)
    assert result.returncode != 0 and "sort by one of score, date" in result.stderr
    listed = semfs("search", mount.store, f"{ALL} camera:nikon", "--json").stdout
    assert '"path": "animals/cat.jpg"' in listed
