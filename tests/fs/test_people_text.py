"""People and text facets through a real mount: a real photo of a person is found under
tags/people/ and by people:1, and left out by people:none; a real photo with a sign
rendered on it (DejaVu, from fonts-dejavu-core) is read by the idle pass, after which
search/invoice/ lists it and user.semfs.text shows its words, on the image and on the
result entry."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from tests.fs.conftest import Mount, checked_mount
from tests.fs.test_search import expect_errno, unranked, wait_indexed

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
TEXT_TIMEOUT = 60.0  # seconds for the idle pass to read the sign


def with_sign(source: Path, target: Path, words: str) -> None:
    """A copy of a real photo at 1,024 pixels with a sign: dark letters on a light panel."""
    image = Image.open(source).convert("RGB")
    image.thumbnail((1024, 1024))
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(FONT), 56)
    left, top, right, bottom = draw.textbbox((0, 0), words, font=font)
    x, y = 60, image.height // 3
    draw.rectangle((x - 20, y - 20, x + right - left + 20, y + bottom - top + 30), fill="white")
    draw.text((x - left, y - top), words, font=font, fill="black")
    image.save(target, "JPEG", quality=92)


@pytest.fixture
def mount(tmp_path: Path, photos: dict[str, Path]) -> Iterator[Mount]:
    if not FONT.exists():
        pytest.skip("fonts-dejavu-core is not installed")
    store = tmp_path / "store"
    store.mkdir()
    Image.open(photos["astronaut.png"]).save(store / "astronaut.png")  # a woman's face
    Image.open(photos["coffee.png"]).save(store / "coffee.png")  # a cup: nobody
    with_sign(photos["rocket.jpg"], store / "scan.jpg", "INVOICE 2024")
    with checked_mount(store, tmp_path) as mounted:
        wait_indexed(mounted, 3)
        yield mounted


def listed(mount: Mount, *parts: str) -> list[str]:
    names = os.listdir(mount.mountpoint.joinpath(*parts))
    return unranked(names) if parts[0] == "search" else sorted(names)


def test_people_and_text_through_the_mount(mount: Mount) -> None:
    mnt = mount.mountpoint
    # People, at ingest: a tag, filters that combine, words in the caption.
    assert listed(mount, "tags", "people") == ["astronaut.png"]
    assert listed(mount, "search", "people:1") == ["astronaut.png"]
    assert listed(mount, "search", "people:1+") == ["astronaut.png"]
    assert listed(mount, "search", "people:2+") == []
    assert "astronaut.png" not in listed(mount, "search", "people:none")
    assert "coffee.png" in listed(mount, "search", "people:none")
    assert listed(mount, "search", "people:none colour:red") == ["coffee.png"]
    caption = os.getxattr(mnt / "astronaut.png", "user.semfs.caption").decode()
    assert caption.endswith(", a portrait"), caption
    expect_errno(22, os.listdir, mnt / "search" / "people:lots")  # EINVAL

    # Text, in the idle pass: stored, shown, searchable once read.
    deadline = time.monotonic() + TEXT_TIMEOUT
    while True:
        try:
            text = os.getxattr(mnt / "scan.jpg", "user.semfs.text").decode()
            break
        except OSError:
            assert time.monotonic() < deadline, "the idle pass did not read scan.jpg"
            time.sleep(0.5)
    assert "invoice" in text.split() and "2024" in text.split(), text
    assert "user.semfs.text" in os.listxattr(mnt / "scan.jpg")
    caption = os.getxattr(mnt / "scan.jpg", "user.semfs.caption").decode()
    assert "with the text: invoice 2024" in caption, caption
    assert listed(mount, "search", "invoice") == ["scan.jpg"]
    (entry,) = os.listdir(mnt / "search" / "invoice")
    assert os.getxattr(mnt / "search" / "invoice" / entry, "user.semfs.text") == text.encode()
    # OCR's words are not tags by default (facet_text = "caption"): stray words would be
    assert not (mnt / "tags" / "invoice").exists()
    expect_errno(1, os.setxattr, mnt / "scan.jpg", "user.semfs.text", b"x")  # EPERM
    status = mount.wait_status(texts_queued=0)  # every image read, or tested and passed over
    assert status["texts_read"] == 3
    assert os.getxattr(mnt / "astronaut.png", "user.semfs.text") == b""  # read, no words
