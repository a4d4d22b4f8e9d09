"""The relevance cut decides per query, from what the query names (issue 19, item 2):
through a real mount, with the real models, on real drawings of tools and animals
(Tux Paint's stamps, on white as the evaluation puts them) and the sample photos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import SAMPLE_DIR
from tests.fs.conftest import assert_clean_log, semfs, start_foreground, stop
from tests.fs.test_search import results, unranked, wait_indexed

STAMPS = Path("/usr/share/tuxpaint/stamps")
DRAWINGS = {
    "hammer": "household/tools/hammer.png",
    "measuring_tape": "household/tools/measuring_tape.png",
    "wrench": "household/tools/wrench.png",
    "duck": "animals/birds/duck.png",
    "hedgehog": "animals/mammals/hedgehog.png",
    "kangaroo": "animals/marsupials/kangaroo.png",
}


@pytest.fixture
def tools_and_animals(tmp_path: Path) -> Path:
    if not STAMPS.is_dir():
        pytest.skip("no Tux Paint stamps: apt-get install tuxpaint-stamps-default")
    store = tmp_path / "store"
    store.mkdir()
    for name, stamp in DRAWINGS.items():
        drawing = Image.open(STAMPS / stamp).convert("RGBA")
        page = Image.new("RGBA", drawing.size, "white")
        page.alpha_composite(drawing)
        page.convert("RGB").save(store / f"{name}.jpg", quality=90)
    shutil.copy(SAMPLE_DIR / "chelsea.png", store / "cat.png")
    shutil.copy(SAMPLE_DIR / "coffee.png", store / "coffee.png")
    return store


def test_absent_things_list_nothing_and_broad_words_list_all_they_cover(
    tools_and_animals: Path, tmp_path: Path
) -> None:
    store = tools_and_animals
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    mount = start_foreground(store, mountpoint, tmp_path / "mount.log")
    try:
        wait_indexed(mount, files=len(DRAWINGS) + 2)
        # Things no photo here carries list nothing, not the nearest junk: the fixed cut
        # listed the duck for "a panda" and the wrench for "a toothbrush" (checked below).
        assert results(mount, "a panda") == []
        assert results(mount, "a toothbrush") == []
        assert results(mount, "scissors") == []
        # A broad word lists what its labels cover, first: the fixed cut found at most
        # the kangaroo of the animals.
        animals = unranked(results(mount, "animals"))
        assert {"kangaroo.jpg", "duck.jpg", "cat.png"} <= set(animals)
        assert not {"hammer.jpg", "wrench.jpg", "coffee.png"} & set(animals)
        # What is here is found as before.
        assert unranked(results(mount, "a hammer"))[0] == "hammer.jpg"
        assert unranked(results(mount, "a cup of coffee")) == ["coffee.png"]
        assert unranked(results(mount, "@t=1.15 a panda")) == ["duck.jpg"]  # a cut of one's own
        mount.unmount()
    finally:
        stop(mount)
    assert_clean_log(mount)

    # relevance_cut = fixed: one cut for every query, as before (and the command line
    # searches as the mount does).
    (store / ".semfs" / "config.toml").write_text('relevance_cut = "fixed"\n')
    fixed = json.loads(semfs("search", store, "a panda", "--json").stdout)
    assert [Path(hit["path"]).name for hit in fixed] == ["duck.jpg"]
    fixed = json.loads(semfs("search", store, "animals", "--json").stdout)
    assert {Path(hit["path"]).name for hit in fixed} <= {"kangaroo.jpg"}
