"""Search by example through a real mount: `cp photo similar/` and `mkdir similar/<stored
image>` list the stored images that look most alike, best first, by the features of the
real classifier; bad examples fail the copy; examples survive a remount."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from PIL import Image, ImageOps

from semfs.ml.image_features import ImageFeatures
from tests.conftest import SAMPLE_DIR
from tests.fs.conftest import Mount, assert_clean_log, start_foreground, stop, wait_for
from tests.fs.test_search import (
    INGEST_TIMEOUT,
    catalog_rows,
    expect_errno,
    ranked,
    unranked,
    wait_indexed,
)


def wait_features(mount: Mount, images: int) -> None:
    def done() -> bool:
        status = mount.status()
        return status["image_features"] == images and status["image_features_queued"] == 0

    wait_for(done, INGEST_TIMEOUT, f"image features of {images} images")


def listing_of(path: Path) -> list[str]:
    return os.listdir(path)  # the view's order: best first, each name behind its rank


def test_similar_lists_the_stored_images_that_look_alike_best_first(
    store: Path, tmp_path: Path
) -> None:
    shutil.copy(SAMPLE_DIR / "motorcycle_left.png", store / "motorcycle.png")
    mount = start_foreground(store, tmp_path / "mnt", tmp_path / "daemon.log")
    similar = mount.mountpoint / "similar"
    try:
        wait_indexed(mount, 4)
        wait_features(mount, 4)
        assert "similar" in os.listdir(mount.mountpoint)
        assert listing_of(similar) == []

        # An image from elsewhere: the other eye of the stereo pair finds its twin first.
        subprocess.run(["cp", str(SAMPLE_DIR / "motorcycle_right.png"), str(similar)], check=True)
        example = similar / "motorcycle_right.png"
        assert example.is_dir()
        # The relevance cut leaves out the cat, the coffee and the rocket.
        assert listing_of(example) == ["01 motorcycle.png"]
        twin = example / "01 motorcycle.png"
        assert twin.read_bytes() == (store / "motorcycle.png").read_bytes()
        assert os.getxattr(twin, "user.semfs.path") == b"motorcycle.png"
        assert not (store / "motorcycle_right.png").exists()  # not added to the store

        # A mirrored, cropped, re-encoded cat: still the cat first.
        cat = ImageOps.mirror(Image.open(SAMPLE_DIR / "chelsea.png").convert("RGB"))
        cat.crop((30, 20, 420, 290)).save(tmp_path / "my cat.jpg", quality=70)
        shutil.copyfile(tmp_path / "my cat.jpg", similar / "my cat.jpg")
        assert listing_of(similar / "my cat.jpg")[0] == "01 cat.png"

        # A stored image as the example, left out of its own listing: nothing else in
        # the store looks like the cat.
        os.mkdir(similar / "cat.png")
        assert listing_of(similar / "cat.png") == []
        expect_errno(errno.EEXIST, os.mkdir, similar / "cat.png")
        expect_errno(errno.ENOENT, os.mkdir, similar / "no such image.png")
        assert sorted(listing_of(similar)) == ["cat.png", "motorcycle_right.png", "my cat.jpg"]

        # A file that is no image fails the copy, with the reason in the log.
        (tmp_path / "fake.jpg").write_text("not an image at all\n")
        copy = subprocess.run(["cp", str(tmp_path / "fake.jpg"), str(similar)],
                              capture_output=True, text=True)  # fmt: skip
        assert copy.returncode != 0 and "Invalid argument" in copy.stderr, copy
        assert not (similar / "fake.jpg").exists()
        wait_for(lambda: "similar/fake.jpg refused (EINVAL)" in mount.log_text(), 5, "log")
        shutil.copyfile(SAMPLE_DIR / "coffee.png", similar / "fake.jpg")  # the name is free
        assert listing_of(similar / "fake.jpg")[0] == "01 coffee.png"
        os.rmdir(similar / "fake.jpg")

        # Results are read-only; an example goes with rmdir.
        expect_errno(errno.EROFS, (example / "new.png").write_bytes, b"x")
        expect_errno(errno.EROFS, os.unlink, twin)
        os.rmdir(similar / "my cat.jpg")
        assert "my cat.jpg" not in listing_of(similar)

        # A new image that looks like the example joins its listing, best first.
        shutil.copy(SAMPLE_DIR / "motorcycle_right.png", mount.mountpoint / "second.png")
        wait_for(lambda: "01 second.png" in listing_of(example), INGEST_TIMEOUT, "new twin")
        found = listing_of(example)
        assert found == ranked("second.png", "motorcycle.png"), found  # itself, its twin
        scores = [float(os.getxattr(example / name, "user.semfs.score")) for name in found]
        assert scores == sorted(scores, reverse=True) and scores[0] > 0.9999
        os.mkdir(similar / "second.png")
        assert listing_of(similar / "second.png") == ["01 motorcycle.png"]
        # A name as a view lists it, rank and all, makes that image the example.
        os.mkdir(similar / "02 motorcycle.png")
        assert listing_of(similar / "02 motorcycle.png") == ["01 second.png"]
        os.rmdir(similar / "02 motorcycle.png")

        # Modifiers at the end of the name, as a query's: no cut and 3 results; only
        # what is in a folder named "animals"; by name; a bad value refused with EINVAL.
        os.mkdir(similar / "second.png @t=2 @k=3")
        loose = listing_of(similar / "second.png @t=2 @k=3")
        assert len(loose) == 3 and unranked(loose)[0] == "motorcycle.png", loose
        os.mkdir(similar / "second.png in:animals @t=2")
        assert listing_of(similar / "second.png in:animals @t=2") == ["01 cat.png"]
        os.mkdir(similar / "second.png @t=2 @sort=name")
        by_name = unranked(listing_of(similar / "second.png @t=2 @sort=name"))
        assert by_name == sorted(by_name) and len(by_name) == 4, by_name
        expect_errno(errno.EINVAL, os.mkdir, similar / "second.png @k=0")
        wait_for(lambda: "k must be a whole number" in mount.log_text(), 5, "log of @k=0")
        shutil.copyfile(SAMPLE_DIR / "motorcycle_right.png", similar / "right.png @k=1 @t=2")
        assert len(unranked(listing_of(similar / "right.png @k=1 @t=2"))) == 1
        for name in ("second.png @t=2 @k=3", "second.png @t=2 @sort=name", "right.png @k=1 @t=2"):
            os.rmdir(similar / name)

        # A second cat.png elsewhere: alone in a listing it is cat.png; beside the first
        # it is cat~<its id>.png, behind its rank, and that name as listed makes it the
        # example, not the first cat (then its one result).
        (mount.mountpoint / "twins").mkdir()
        shutil.copy(SAMPLE_DIR / "chelsea.png", mount.mountpoint / "twins" / "cat.png")
        wait_for(lambda: bool(listing_of(similar / "cat.png")), INGEST_TIMEOUT, "second cat")
        assert listing_of(similar / "cat.png") == ["01 cat.png"]
        alone = similar / "cat.png" / "01 cat.png"
        assert os.getxattr(alone, "user.semfs.path") == b"twins/cat.png"
        ((second_cat,),) = catalog_rows(store, "SELECT id FROM files WHERE dir = ? AND name = ?",
                                        b"twins", b"cat.png")  # fmt: skip
        os.mkdir(similar / "coffee.png @t=2")  # every other image: both cats
        listed = listing_of(similar / "coffee.png @t=2")
        assert sorted(unranked(listed)) == ["cat.png", f"cat~{second_cat}.png", "motorcycle.png",
                                            "rocket.jpg", "second.png"]  # fmt: skip
        (twin_as_listed,) = [name for name in listed if name.endswith(f" cat~{second_cat}.png")]
        os.mkdir(similar / twin_as_listed)
        assert listing_of(similar / twin_as_listed) == ["01 cat.png"]
        first_cat = similar / twin_as_listed / "01 cat.png"
        assert os.getxattr(first_cat, "user.semfs.path") == b"animals/cat.png"
        for name in ("coffee.png @t=2", twin_as_listed):
            os.rmdir(similar / name)
        os.unlink(mount.mountpoint / "twins" / "cat.png")
    finally:
        stop(mount)
    assert_clean_log(mount)

    # Examples are kept across a remount, also one copied in before the features were
    # reduced to 256 (stored as the network's 1,280, unit length): it is converted.
    whole = ImageFeatures("efficientnet-lite0", 1280)
    unreduced = whole.features([Image.open(SAMPLE_DIR / "motorcycle_right.png").convert("RGB")])
    db = sqlite3.connect(store / ".semfs" / "catalog.sqlite3", isolation_level=None)
    try:
        changed = db.execute(
            "UPDATE examples SET embedder = ?, vector = ? WHERE name = ?",
            (whole.name, unreduced[0].tobytes(), b"motorcycle_right.png"),
        )
        assert changed.rowcount == 1
    finally:
        db.close()
    mount = start_foreground(store, tmp_path / "mnt", tmp_path / "daemon2.log")
    try:
        assert sorted(listing_of(similar)) == [
            "cat.png", "motorcycle_right.png", "second.png", "second.png in:animals @t=2"
        ]  # fmt: skip
        wait_for(lambda: bool(listing_of(similar / "motorcycle_right.png")), 30, "remount")
        best = listing_of(similar / "motorcycle_right.png")[0]
        assert best in ("01 motorcycle.png", "01 second.png"), best
        assert listing_of(similar / "second.png in:animals @t=2") == ["01 cat.png"]
    finally:
        stop(mount)
    assert_clean_log(mount)
    embedders = catalog_rows(store, "SELECT DISTINCT embedder FROM examples WHERE vector NOTNULL")
    assert embedders == [("efficientnet-lite0:svd256",)]
