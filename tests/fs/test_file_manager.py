"""A real file manager (PCManFM) on a virtual screen (Xvfb), driven with xdotool.

It opens `MOUNT/search/<query>/` and must show the results with thumbnails it made by
reading the images through the mount: the window is titled with the query, the image's
backing file was read (its atime moved), and the screenshot holds the image itself,
shrunk, where an image not among the results is absent. Sorted by name, as it sorts,
the icons are in rank order, the best match first. Then a folder made with the file
manager's own "New Folder" under `search/` is a saved search, and it fills when a
matching image is copied in.

The screenshots are kept when SEMFS_SCREENSHOTS names a directory (docs/ has two).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.feature import match_template

from tests.fs.conftest import Mount, checked_mount, wait_for
from tests.fs.test_search import INGEST_TIMEOUT, results, unranked

TOOLS = ("Xvfb", "pcmanfm", "xdotool", "import", "dbus-run-session")
MISSING = [tool for tool in TOOLS if shutil.which(tool) is None]
if MISSING:
    pytest.skip(f"needs {', '.join(MISSING)} (scripts/install.sh)", allow_module_level=True)

SCREEN = (1024, 700)
WINDOW_TIMEOUT = 90.0  # a cold start of PCManFM on a loaded 2-core machine took > 30 s
THUMBNAIL_SIZES = (128, 96, 64, 48)  # the box libfm fits a thumbnail into, by view
# Normalised cross-correlation of a shrunk photo with the screenshot: the photo drawn as
# a thumbnail scores above 0.9; a photo that is not on screen scores well below.
SHOWN, ABSENT = 0.8, 0.6

PCMANFM_CONF = """\
[ui]
win_width=960
win_height=640
view_mode=thumbnail
show_hidden=0
sort=name;ascending;
"""
LIBFM_CONF = """\
[config]
thumbnail_local=1
thumbnail_max=16384
[ui]
show_thumbnail=1
thumbnail_size=128
"""


@dataclass
class Screen:
    display: str
    home: Path

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DISPLAY": self.display,
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            "XDG_RUNTIME_DIR": str(self.home / "run"),
        }

    def xdotool(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(["xdotool", *args], env=self.env(), capture_output=True,
                                text=True, timeout=WINDOW_TIMEOUT + 5, check=False)  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(f"xdotool {args} failed: {result.stderr}")
        return result.stdout.strip()

    def wait_window(self, title: str) -> str:
        """The id of a window titled exactly `title`, once it is there."""
        found = ""
        deadline = time.monotonic() + WINDOW_TIMEOUT
        while not found:
            log = self.home / "pcmanfm.log"
            said = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            assert time.monotonic() < deadline, f"no window titled {title!r}; pcmanfm: {said}"
            found = self.xdotool("search", "--name", f"^{title}$", check=False)
            time.sleep(0.1)
        return found.split()[0]

    def screenshot(self, path: Path) -> np.ndarray:
        subprocess.run(["import", "-window", "root", str(path)], env=self.env(), check=True,
                       timeout=30)  # fmt: skip
        return np.asarray(Image.open(path).convert("L"), dtype=np.float32)

    def go_to(self, window: str, path: Path) -> None:
        """Type a path into the location bar, as a person would."""
        self.xdotool("windowactivate", "--sync", window, check=False)  # no window manager
        self.xdotool("key", "--window", window, "ctrl+l")
        self.xdotool("type", "--delay", "5", str(path))
        self.xdotool("key", "Return")


@pytest.fixture
def screen(tmp_path: Path) -> Iterator[Screen]:
    home = tmp_path / "home"
    (home / ".config" / "pcmanfm" / "default").mkdir(parents=True)
    (home / ".config" / "libfm").mkdir(parents=True)
    (home / "run").mkdir(mode=0o700)
    (home / ".config" / "pcmanfm" / "default" / "pcmanfm.conf").write_text(PCMANFM_CONF)
    (home / ".config" / "libfm" / "libfm.conf").write_text(LIBFM_CONF)
    read, write = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", f"{SCREEN[0]}x{SCREEN[1]}x24",
         "-nolisten", "tcp"],
        pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(write)
    with os.fdopen(read) as numbers:
        display = ":" + numbers.readline().strip()
    try:
        yield Screen(display, home)
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def file_manager(screen: Screen) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.kill()
        process.wait(timeout=30)


def open_folder(screen: Screen, started: list[subprocess.Popen[bytes]], folder: Path) -> str:
    with open(screen.home / "pcmanfm.log", "ab") as log:
        command = ["dbus-run-session", "--", "pcmanfm", str(folder)]
        started.append(subprocess.Popen(command, env=screen.env(), stdout=log, stderr=log))
    return screen.wait_window(folder.name)


def best_match(screenshot: np.ndarray, photo: Path) -> float:
    """How well the photo, shrunk as a thumbnail, matches some place of the screenshot."""
    return best_place(screenshot, photo)[0]


def best_place(screenshot: np.ndarray, photo: Path) -> tuple[float, int, int]:
    """The best match of the photo, shrunk as a thumbnail, with the screenshot: how well
    it matches, and the x and y of its centre there."""
    best = (-1.0, 0, 0)
    original = Image.open(photo).convert("L")
    for size in THUMBNAIL_SIZES:
        thumbnail = original.copy()
        thumbnail.thumbnail((size, size), Image.Resampling.BILINEAR)
        template = np.asarray(thumbnail, dtype=np.float32)
        matches = match_template(screenshot, template)
        y, x = np.unravel_index(int(np.argmax(matches)), matches.shape)
        score = float(matches[y, x])
        if score > best[0]:
            best = (score, int(x) + thumbnail.width // 2, int(y) + thumbnail.height // 2)
    return best


def make_read_detectable(path: Path) -> None:
    """An atime older than the mtime: the next read of the file moves it (relatime)."""
    os.utime(path, ns=(0, path.stat().st_mtime_ns))


def keep(shot: Path, name: str) -> None:
    if target := os.environ.get("SEMFS_SCREENSHOTS"):
        shutil.copy(shot, Path(target) / name)


def test_results_show_as_thumbnails_read_through_the_mount(
    store: Path,
    photos: dict[str, Path],
    tmp_path: Path,
    screen: Screen,
    file_manager: list[subprocess.Popen[bytes]],
) -> None:
    with checked_mount(store, tmp_path) as mount:
        mount.wait_status(queued=0, indexed=3)
        query = mount.mountpoint / "search" / "a cup of coffee"
        assert results(mount, "a cup of coffee") == ["01 coffee.png"]
        for image in ("coffee.png", "rocket.jpg"):
            make_read_detectable(store / image)

        open_folder(screen, file_manager, query)  # titled with the query
        wait_for(lambda: (store / "coffee.png").stat().st_atime > 0, WINDOW_TIMEOUT,
                 "the file manager to read the result through the mount")  # fmt: skip
        time.sleep(1.0)  # the thumbnail is drawn after it is read
        screenshot = screen.screenshot(tmp_path / "query.png")
        keep(tmp_path / "query.png", "file-manager-query.png")
        assert (store / "rocket.jpg").stat().st_atime == 0  # not a result: not read
        # The originals, not the store's copies: reading those would move their atimes.
        assert best_match(screenshot, photos["coffee.png"]) > SHOWN
        assert best_match(screenshot, photos["rocket.jpg"]) < ABSENT


def test_icons_sorted_by_name_show_the_best_match_first(
    store: Path,
    photos: dict[str, Path],
    tmp_path: Path,
    screen: Screen,
    file_manager: list[subprocess.Popen[bytes]],
) -> None:
    """By their plain names the coffee would be the second icon, after the cat; ranked,
    the file manager's own sort by name puts it first, and the others as ranked."""
    shown = {"coffee.png": photos["coffee.png"], "rocket.jpg": photos["rocket.jpg"],
             "cat.png": photos["chelsea.png"]}  # fmt: skip
    with checked_mount(store, tmp_path) as mount:
        mount.wait_status(queued=0, indexed=3)
        ranking = unranked(results(mount, "a cup of coffee @t=2"))  # the cut let all in
        assert ranking[0] == "coffee.png" and sorted(ranking) == sorted(shown)
        open_folder(screen, file_manager, mount.mountpoint / "search" / "a cup of coffee @t=2")

        def places() -> dict[str, tuple[float, int, int]]:
            screenshot = screen.screenshot(tmp_path / "ranked.png")
            return {name: best_place(screenshot, photo) for name, photo in shown.items()}

        wait_for(lambda: all(score > SHOWN for score, _, _ in places().values()),
                 WINDOW_TIMEOUT, "the three thumbnails")  # fmt: skip
        found = places()
        rows = [y for _, _, y in found.values()]
        assert max(rows) - min(rows) < THUMBNAIL_SIZES[0], found  # one row of icons
        assert sorted(shown, key=lambda name: found[name][1]) == ranking, found  # by x
        keep(tmp_path / "ranked.png", "file-manager-ranked.png")


def test_new_folder_in_the_file_manager_is_a_saved_search_that_fills(
    tmp_path: Path,
    photos: dict[str, Path],
    screen: Screen,
    file_manager: list[subprocess.Popen[bytes]],
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    for name in ("rocket.jpg", "coffee.png"):
        shutil.copy(photos[name], store / name)
    with checked_mount(store, tmp_path) as mount:
        mount.wait_status(queued=0, indexed=2)
        search = mount.mountpoint / "search"
        window = open_folder(screen, file_manager, search)

        screen.xdotool("key", "--window", window, "ctrl+shift+n")  # File > Create New > Folder
        dialog = screen.wait_window("Creating New Folder")
        screen.xdotool("key", "--window", dialog, "ctrl+a")
        screen.xdotool("type", "--delay", "5", "a cat")
        screen.xdotool("key", "Return")
        wait_for(lambda: "a cat" in os.listdir(search), WINDOW_TIMEOUT, "the saved search")
        assert saved_queries(mount) == ["a cat"]
        assert os.listdir(search / "a cat") == []  # no cat yet

        shutil.copy(photos["chelsea.png"], mount.mountpoint / "chelsea.png")
        wait_for(lambda: results(mount, "a cat") == ["01 chelsea.png"], INGEST_TIMEOUT,
                 "the saved search to fill")  # fmt: skip
        screen.go_to(window, search / "a cat")
        screen.wait_window("a cat")
        wait_for(lambda: best_match(screen.screenshot(tmp_path / "cat.png"), photos["chelsea.png"])
                 > SHOWN, WINDOW_TIMEOUT, "the new result's thumbnail")  # fmt: skip
        keep(tmp_path / "cat.png", "file-manager-saved-search.png")


def saved_queries(mount: Mount) -> list[str]:
    import sqlite3

    db = sqlite3.connect(mount.store / ".semfs" / "catalog.sqlite3")
    try:
        return [os.fsdecode(row[0]) for row in db.execute("SELECT query FROM saved_queries")]
    finally:
        db.close()


def test_webp_results_show_as_thumbnails_too(
    tmp_path: Path,
    photos: dict[str, Path],
    screen: Screen,
    file_manager: list[subprocess.Popen[bytes]],
) -> None:
    """.webp is one of the default image types: GdkPixbuf needs its WebP loader
    (webp-pixbuf-loader, which install.sh installs) to draw it."""
    store = tmp_path / "store"
    store.mkdir()
    Image.open(photos["coffee.png"]).convert("RGB").save(store / "coffee.webp", quality=90)
    with checked_mount(store, tmp_path) as mount:
        mount.wait_status(queued=0, indexed=1)
        assert results(mount, "a cup of coffee") == ["01 coffee.webp"]
        make_read_detectable(store / "coffee.webp")
        open_folder(screen, file_manager, mount.mountpoint / "search" / "a cup of coffee")
        wait_for(lambda: (store / "coffee.webp").stat().st_atime > 0, WINDOW_TIMEOUT,
                 "the file manager to read the result through the mount")  # fmt: skip
        wait_for(lambda: best_match(screen.screenshot(tmp_path / "webp.png"),
                                    photos["coffee.png"]) > SHOWN,
                 WINDOW_TIMEOUT, "the WebP thumbnail")  # fmt: skip
