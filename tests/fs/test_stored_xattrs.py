"""Every stored image shows what the catalog says of it, through the mount: its caption,
keywords and ingest status, as xattrs of the file itself (not only of search results)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from tests.fs.conftest import Mount, wait_for

CAPTION, KEYWORDS, STATUS = "user.semfs.caption", "user.semfs.keywords", "user.semfs.status"


def test_stored_images_show_their_caption_keywords_and_status(mounted: Mount) -> None:
    mnt = mounted.mountpoint
    (mnt / "fake.jpg").write_bytes(b"not a JPEG at all")
    mounted.wait_status(queued=0, indexed=3, failed=1)

    coffee = mnt / "coffee.png"
    assert {CAPTION, KEYWORDS, STATUS} <= set(os.listxattr(coffee))
    caption = os.getxattr(coffee, CAPTION).decode()
    keywords = json.loads(os.getxattr(coffee, KEYWORDS))
    assert os.getxattr(coffee, STATUS) == b"indexed"
    assert caption and keywords and all(isinstance(word, str) for word in keywords)
    (result,) = [n for n in os.listdir(mnt / "search" / "a cup of coffee") if "coffee" in n]
    assert os.getxattr(mnt / "search" / "a cup of coffee" / result, CAPTION).decode() == caption
    assert os.getxattr(mnt / "animals" / "cat.png", STATUS) == b"indexed"

    failed = os.getxattr(mnt / "fake.jpg", STATUS).decode()
    assert failed.startswith("failed: ") and "image" in failed
    assert CAPTION not in os.listxattr(mnt / "fake.jpg")  # never described

    for not_an_image in (mnt / "notes.txt", mnt / "animals"):
        assert not {CAPTION, KEYWORDS, STATUS} & set(os.listxattr(not_an_image))
        with pytest.raises(OSError) as absent:
            os.getxattr(not_an_image, STATUS)
        assert absent.value.errno == errno.ENODATA

    for change in (
        lambda: os.setxattr(coffee, STATUS, b"indexed"),
        lambda: os.setxattr(coffee, KEYWORDS, b"[]"),
        lambda: os.removexattr(coffee, KEYWORDS),
    ):
        with pytest.raises(OSError) as refused:
            change()
        assert refused.value.errno == errno.EPERM
    assert os.listxattr(mounted.store / "coffee.png") == []  # nothing written to the file

    # A caption the user sets is the file's own: shown at once, and it describes the image.
    rocket = mnt / "rocket.jpg"
    os.setxattr(rocket, CAPTION, b"a red rocket on a launch pad")
    assert os.getxattr(rocket, CAPTION) == b"a red rocket on a launch pad"
    assert os.getxattr(mounted.store / "rocket.jpg", CAPTION) == b"a red rocket on a launch pad"
    wait_for(lambda: "rocket" in json.loads(os.getxattr(rocket, KEYWORDS)),
             what="the user's caption described")  # fmt: skip


def test_descriptions_in_files_are_added_and_junk_ones_refused(
    mounted: Mount, photos: dict[str, Path]
) -> None:
    mnt = mounted.mountpoint

    def jpeg(source: str, name: str, description: str) -> None:
        exif = Image.Exif()
        exif[0x010E] = description  # ImageDescription
        Image.open(photos[source]).convert("RGB").save(mnt / name, "JPEG", exif=exif)

    jpeg("coffee.png", "boilerplate.jpg", "Exif JPEG")
    jpeg("rocket.jpg", "museum.jpg", "https://www.museum.example.org/collection/12345")
    jpeg("chelsea.png", "mia.jpg", "Grandma's cat Mia")
    mounted.wait_status(queued=0, indexed=6)

    def caption(path: Path) -> str:
        """Without the words the idle text pass may add, and may read differently in a
        PNG and its JPEG copy (docs/facets.md, Text)."""
        return os.getxattr(path, CAPTION).decode().split(", with the text:")[0]

    with_model = caption(mnt / "coffee.png")  # the same photo, bare
    assert caption(mnt / "boilerplate.jpg") == with_model
    assert "museum" not in caption(mnt / "museum.jpg")
    mia = caption(mnt / "mia.jpg")
    bare_cat = caption(mnt / "animals" / "cat.png")
    assert mia == f"{bare_cat}. Grandma's cat Mia"  # added to the model's, not instead
    for query, name in (("a cup of coffee", "boilerplate.jpg"), ("a cat", "mia.jpg")):
        assert any(name in listed for listed in os.listdir(mnt / "search" / query)), query
    log = mounted.log_text()
    assert "ignoring its exif description 'Exif JPEG': camera boilerplate" in log
    assert "a web address" in log
