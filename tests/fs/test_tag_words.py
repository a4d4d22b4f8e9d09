"""tags/ through a real mount lists words a person would use: the labels' names and
their kinds ("cat", "animal"), not the words of the captions' glosses."""

from __future__ import annotations

import os

from semfs.ml.colours import PALETTE
from semfs.ml.label_tags import LabelTags
from tests.fs.conftest import Mount
from tests.fs.test_search import wait_indexed

GLOSS_FILLER = {"typically", "small", "small serving", "serving", "concentrated", "domestic"}


def test_tags_are_labels_and_their_kinds_not_gloss_words(mounted: Mount) -> None:
    wait_indexed(mounted, 3)
    tags = mounted.mountpoint / "tags"
    listed = set(os.listdir(tags))
    assert {"cat", "animal", "espresso", "coffee", "drink"} <= listed
    assert os.listdir(tags / "animal") == ["cat.png"]
    assert os.listdir(tags / "cat" / "animal") == ["cat.png"]
    assert os.listdir(tags / "coffee") == ["coffee.png"]
    assert not listed & GLOSS_FILLER
    # Every tag is a label's name or one of its kinds, or a facet's (the images' dominant
    # colours; these photos carry no EXIF time or GPS): nothing from the caption's text.
    label_tags = LabelTags()
    every = {tag for index in range(1000) for tag in label_tags.of_label(index)} | set(PALETTE)
    assert listed <= every, listed - every
    caption = os.getxattr(tags / "coffee" / "coffee.png", "user.semfs.caption").decode()
    assert "(a small serving of concentrated coffee)" in caption  # search keeps the gloss
