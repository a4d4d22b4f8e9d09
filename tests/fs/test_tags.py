"""The tags view through a real mount: keywords with counts, the images of one keyword
and of several, read-only, and following the store as images come and go."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

from tests.fs.conftest import Mount, wait_for
from tests.fs.test_search import INGEST_TIMEOUT, expect_errno, wait_indexed


def keywords_of(mount: Mount, name: str) -> list[str]:
    import json
    import sqlite3

    db = sqlite3.connect(mount.store / ".semfs" / "catalog.sqlite3")
    try:
        rows = db.execute(
            "SELECT d.keywords FROM descriptions d JOIN files f ON f.id = d.file_id "
            "WHERE f.name = ?", (name.encode(),)
        ).fetchall()  # fmt: skip
    finally:
        db.close()
    return [str(k) for k in json.loads(rows[0][0])]


def test_tags_list_keywords_with_counts_and_their_images(
    mounted: Mount, photos: dict[str, Path]
) -> None:
    wait_indexed(mounted, 3)
    tags = mounted.mountpoint / "tags"
    cat_words = keywords_of(mounted, "cat.png")
    assert "cat" in cat_words
    listed = os.listdir(tags)
    assert set(cat_words) <= set(listed)
    assert (tags / "cat").stat().st_size == 1  # how many images have it
    # Plain names, unranked: a keyword folder lists its images newest first, not by score.
    assert os.listdir(tags / "cat") == ["cat.png"]
    assert (tags / "cat" / "cat.png").read_bytes() == photos["chelsea.png"].read_bytes()
    assert os.getxattr(tags / "cat" / "cat.png", "user.semfs.path") == b"animals/cat.png"
    # Two keywords: the images with both; any keyword of another image: none.
    other = next(word for word in cat_words if word != "cat")
    assert os.listdir(tags / "cat" / other) == ["cat.png"]
    coffee_word = next(w for w in keywords_of(mounted, "coffee.png") if w not in cat_words)
    assert os.listdir(tags / "cat" / coffee_word) == []
    expect_errno(errno.ENOENT, os.listdir, tags / "no such keyword")
    expect_errno(errno.ENOENT, os.listdir, tags / "cat" / "no such keyword")
    expect_errno(errno.EROFS, os.mkdir, tags / "mine")
    expect_errno(errno.EROFS, (tags / "cat" / "new.txt").write_text, "x")

    # A second cat: the count and the folder follow; the keyword goes with its images.
    shutil.copy(photos["chelsea.png"], mounted.mountpoint / "another cat.png")
    wait_for(lambda: (tags / "cat").stat().st_size == 2, INGEST_TIMEOUT, "the second cat")
    assert sorted(os.listdir(tags / "cat")) == ["another cat.png", "cat.png"]
    os.unlink(mounted.mountpoint / "another cat.png")
    os.unlink(mounted.mountpoint / "animals" / "cat.png")
    wait_for(lambda: "cat" not in os.listdir(tags), 20, "the keyword to go")


def test_triplets_are_readable_and_put_who_does_what_first(mounted: Mount) -> None:
    """Two captions with the same words in other roles: the embedding ranks "dogs chasing
    cats" nearer to the cat chasing the dog (measured: cosine .021 higher); the query's
    triplet puts the caption that says the same thing first anyway."""
    wait_indexed(mounted, 3)
    mnt = mounted.mountpoint
    os.setxattr(mnt / "coffee.png", "user.semfs.caption", b"a dog chasing a cat in a park")
    os.setxattr(mnt / "rocket.jpg", "user.semfs.caption", b"a cat chasing a dog in a park")
    query = mnt / "search" / "dogs chasing cats"

    def ranking() -> dict[str, str]:
        """Image name -> its name as listed (`01 coffee.png`), in the listing's order."""
        return {name.partition(" ")[2]: name for name in os.listdir(query)}

    def listed() -> list[str]:
        return [image for image in ranking() if image in ("coffee.png", "rocket.jpg")]

    wait_for(lambda: listed() == ["coffee.png", "rocket.jpg"], INGEST_TIMEOUT, "dog first")
    assert os.listdir(query)[0] == "01 coffee.png"
    names = ranking()
    scores = [float(os.getxattr(query / names[image], "user.semfs.score")) for image in listed()]
    assert scores[0] < scores[1]  # first by its triplet, not by its embedding
    assert os.listdir(mnt / "search" / "the cat chasing the dog")[0] == "01 rocket.jpg"
    found = os.getxattr(query / names["rocket.jpg"], "user.semfs.triplets")
    assert json.loads(found) == [["cat", "chasing", "dog"]]
    assert "user.semfs.triplets" in os.listxattr(query / "01 coffee.png")
