"""Bad input through one real mount, each kind its own case: nothing is lost (the bytes
read back are the bytes written, in the mount and in the store), the daemon stays up
with no traceback, and each kind gets its clear outcome: an image that cannot be
captioned is recorded as failed with a reason, an odd but valid one is captioned, a
name that cannot be a query gets an errno.

Every file is written first and ingested together; the cases then check the outcome.
"""

from __future__ import annotations

import errno
import io
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.conftest import SAMPLE_DIR
from tests.fs.conftest import Mount, assert_clean_log, start_foreground, stop, wait_for
from tests.fs.test_search import INGEST_TIMEOUT


def encoded(image: Image.Image, form: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, form, **options)
    return buffer.getvalue()


def photo(size: int = 160) -> Image.Image:
    return Image.open(SAMPLE_DIR / "chelsea.png").convert("RGB").resize((size, size))


def flipped_middle(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0x5A for b in data[middle : middle + 64]) + data[middle + 64 :]


def png_declaring(width: int, height: int) -> bytes:
    """A valid PNG header claiming a huge image, with almost no data behind it."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    ihdr = struct.pack(">I", len(header)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return b"\x89PNG\r\n\x1a\n" + ihdr + b"\0\0\0\0IEND\xaeB`\x82"


def broken_exif() -> bytes:
    jpeg = encoded(photo(), "JPEG")
    garbage = b"Exif\0\0" + b"MM\0\x2a\0\0\0\x08" + b"\xff" * 40  # IFD pointing nowhere
    app1 = b"\xff\xe1" + struct.pack(">H", len(garbage) + 2) + garbage
    return jpeg[:2] + app1 + jpeg[2:]


def animated_gif() -> bytes:
    frames = [photo(120).rotate(angle) for angle in (0, 90, 180)]
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


# name -> (bytes, expected state: "failed" with a reason containing the text, "indexed",
# or None: not an image name, stored but never catalogued)
IMAGES: dict[str, tuple[Callable[[], bytes], str | None, str]] = {
    "truncated.jpg": (lambda: encoded(photo(), "JPEG")[:600], "failed", "truncated"),
    "corrupt.jpg": (lambda: encoded(photo(), "JPEG")[:20] + os.urandom(3000), "failed", ""),
    "truncated.png": (lambda: encoded(photo(), "PNG")[:300], "failed", "truncated"),
    # Damage in the middle of the pixel data: Pillow decodes what it can and the image is
    # captioned from it (the file is as written; the caption may describe noise).
    "corrupt.png": (lambda: flipped_middle(encoded(photo(), "PNG")), "indexed", ""),
    "truncated.webp": (lambda: encoded(photo(), "WEBP")[:80], "failed", ""),
    "truncated.gif": (lambda: encoded(photo().convert("P"), "GIF")[:60], "failed", ""),
    "empty.jpg": (lambda: b"", "failed", "empty"),
    "text.jpg": (lambda: b"a shopping list, named like a photo\n", "failed", "not an image"),
    # 144 Mpx a PNG must decode whole (max_full_decode_pixels); a few kB on disk.
    "bomb.png": (lambda: encoded(Image.new("1", (12_000, 12_000)), "PNG"), "failed", "too large"),
    "declared-huge.png": (lambda: png_declaring(100_000, 100_000), "failed", "bomb"),
    # 900 Mpx: refused by semfs's limit, quoted (Pillow's own check used to fire first).
    "declared-900mp.png": (
        lambda: png_declaring(30_000, 30_000),
        "failed",
        "30000x30000 is 900,000,000 pixels, over semfs's limit of 250,000,000",
    ),
    # A 108 Mpx camera-sized JPEG (1.6 MB of one colour): decoded reduced, captioned.
    "camera-12000x9000.jpg": (
        lambda: encoded(Image.new("RGB", (12_000, 9_000), (70, 110, 160)), "JPEG", quality=20),
        "indexed",
        "",
    ),
    "fake.heic": (lambda: b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + os.urandom(500), "failed", ""),
    "one-pixel.png": (lambda: encoded(Image.new("RGB", (1, 1), "blue"), "PNG"), "indexed", ""),
    "cmyk.jpg": (lambda: encoded(photo().convert("CMYK"), "JPEG"), "indexed", ""),
    "sixteen-bit.png": (
        lambda: encoded(photo().convert("L").convert("I;16"), "PNG"),
        "indexed",
        "",
    ),
    "palette-alpha.png": (
        lambda: encoded(photo().convert("P"), "PNG", transparency=0),
        "indexed",
        "",
    ),
    "animated.gif": (animated_gif, "indexed", ""),
    "broken-exif.jpg": (broken_exif, "indexed", ""),
    "camera.cr2": (lambda: b"II*\0\x10\0\0\0CR\x02\0" + os.urandom(2000), None, ""),
    "camera.dng": (lambda: b"II*\0" + os.urandom(2000), None, ""),
}
# Odd names, each holding a real photo.
NAMES: dict[str, bytes] = {
    "newline": b"new\nline.jpg",
    "invalid-utf8": b"caf\xe9-\xff.jpg",
    "255-bytes": b"n" * 251 + b".jpg",
    "leading-dash": b"-rf --no-preserve-root.jpg",
    "shell-characters": b"$(reboot) `x` ; | & *.jpg",
}


@pytest.fixture(scope="module")
def mount(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mount]:
    root = tmp_path_factory.mktemp("bad-input")
    (root / "store").mkdir()
    mounted = start_foreground(root / "store", root / "mnt", root / "daemon.log")
    try:
        mounted.wait_reconciled()
        mnt = os.fsencode(mounted.mountpoint)
        for name, (make, _, _) in IMAGES.items():
            (mounted.mountpoint / name).write_bytes(make())
        good = encoded(photo(), "JPEG")
        for name in NAMES.values():
            with open(mnt + b"/" + name, "wb") as file:
                file.write(good)
        yield mounted
    finally:
        stop(mounted)
    assert_clean_log(mounted)


@pytest.fixture(scope="module")
def ingested(mount: Mount) -> dict[str, Any]:
    catalogued = sum(state is not None for _, state, _ in IMAGES.values()) + len(NAMES)

    def drained() -> bool:
        status = mount.status()
        return status["files"] == catalogued and status["queued"] == 0

    wait_for(drained, timeout=INGEST_TIMEOUT, what="every image ingested")
    return mount.status()


def catalog_state(store: Path, name: bytes) -> tuple[str, str] | None:
    import sqlite3

    db = sqlite3.connect(f"file:{store / '.semfs' / 'catalog.sqlite3'}?mode=ro", uri=True)
    try:
        row = db.execute(
            "SELECT state, coalesce(error, '') FROM files WHERE dir = x'' AND name = ?", (name,)
        ).fetchone()
    finally:
        db.close()
    return None if row is None else (row[0], row[1])


@pytest.mark.parametrize("name", IMAGES)
def test_bad_and_odd_images(mount: Mount, ingested: dict[str, Any], name: str) -> None:
    _, expected, reason = IMAGES[name]
    written = (mount.mountpoint / name).read_bytes()
    assert written == (mount.store / name).read_bytes()  # nothing lost
    assert len(written) > 0 or name == "empty.jpg"
    state = catalog_state(mount.store, name.encode())
    if expected is None:
        assert state is None  # not an image name: an ordinary file, never read by ingest
        return
    assert state is not None and state[0] == expected, state
    if expected == "failed":
        assert state[1] and reason in state[1], state  # a reason a person can read
    else:
        assert state[1] == ""


@pytest.mark.parametrize("kind", NAMES)
def test_odd_file_names(mount: Mount, ingested: dict[str, Any], kind: str) -> None:
    name = NAMES[kind]
    path = os.fsencode(mount.mountpoint) + b"/" + name
    assert name in os.listdir(os.fsencode(mount.mountpoint))
    with open(path, "rb") as file:
        assert file.read() == encoded(photo(), "JPEG")
    assert catalog_state(mount.store, name) == ("indexed", "")


def test_a_name_too_long_is_refused_as_by_a_plain_directory(mount: Mount, tmp_path: Path) -> None:
    name = "n" * 252 + ".jpg"  # 256 bytes
    for directory in (mount.mountpoint, tmp_path):
        with pytest.raises(OSError) as refused:
            (directory / name).write_bytes(b"x")
        assert refused.value.errno == errno.ENAMETOOLONG


QUERIES: dict[str, tuple[bytes, int | None]] = {
    "only-spaces": (b"   ", errno.EINVAL),
    "too-long": (b"snow " * 52, errno.ENAMETOOLONG),  # 260 bytes
    "only-punctuation": (b"?!.,;:", errno.EINVAL),
    "only-emoji": ("🐱🏔️".encode(), errno.EINVAL),
    "emoji-and-words": ("a cat 🐱".encode(), None),
    "japanese": ("雪山の写真".encode(), None),
    "arabic": ("قطة على الأريكة".encode(), None),
    "cyrillic": ("кошка на диване".encode(), None),
    "dots-inside": (b"cats..dogs", None),
    "sql": (b"cat'; DROP TABLE files; --", None),
    "not-utf8": (b"caf\xe9", errno.EINVAL),
}


@pytest.mark.parametrize("kind", QUERIES)
def test_queries(mount: Mount, ingested: dict[str, Any], kind: str) -> None:
    query, code = QUERIES[kind]
    path = os.fsencode(mount.mountpoint / "search") + b"/" + query
    if code is None:
        os.listdir(path)  # a listing (of whatever matches)
        os.mkdir(path + b"x")  # and a saved search
        assert query + b"x" in os.listdir(os.fsencode(mount.mountpoint / "search"))
        os.rmdir(path + b"x")
    else:
        for call in (os.listdir, os.mkdir):
            with pytest.raises(OSError) as refused:
                call(path)
            assert refused.value.errno == code
    assert mount.status()["files"] == ingested["files"]  # nothing else changed


def test_query_names_the_kernel_resolves_itself(mount: Mount, ingested: dict[str, Any]) -> None:
    search = mount.mountpoint / "search"
    assert sorted(os.listdir(search / "..")) == sorted(os.listdir(mount.mountpoint))
    with pytest.raises(FileNotFoundError):  # "/" separates: a query has no subdirectory
        os.listdir(search / "cats" / "dogs")
    with pytest.raises(ValueError):  # a NUL cannot even reach the kernel
        os.listdir(str(search) + "/a\0b")
    with pytest.raises(OSError) as refused:  # the empty name is the search directory
        os.mkdir(str(search) + "/")
    assert refused.value.errno == errno.EEXIST


def test_user_captions_huge_or_not_utf8(
    mount: Mount, ingested: dict[str, Any], tmp_path: Path
) -> None:
    mnt = mount.mountpoint
    long, bad = mnt / "cmyk.jpg", mnt / "one-pixel.png"
    plain = tmp_path / "plain.jpg"
    plain.write_bytes(b"x")
    for target in (long, plain):  # past what the backing filesystem holds: its own error
        with pytest.raises(OSError) as refused:
            os.setxattr(target, "user.semfs.caption", b"a mountain lake " * 4000)
        assert refused.value.errno in (errno.ENOSPC, errno.E2BIG)
    text = b"a mountain lake " * 240  # 3,840 bytes: the most ext4 keeps, about
    os.setxattr(long, "user.semfs.caption", text)
    os.setxattr(bad, "user.semfs.caption", b"a blue \xff\xfe square")
    assert os.getxattr(bad, "user.semfs.caption") == b"a blue \xff\xfe square"  # as given

    def captioned() -> bool:
        return mount.status()["queued"] == 0 and "blue" in caption(mount, b"one-pixel.png")

    wait_for(captioned, timeout=INGEST_TIMEOUT, what="user captions ingested")
    wait_for(lambda: "mountain lake" in caption(mount, b"cmyk.jpg"), what="long caption")
    assert caption(mount, b"cmyk.jpg") == " ".join(text.decode().split())
    assert caption(mount, b"one-pixel.png") == "a blue \ufffd\ufffd square"


def caption(mount: Mount, name: bytes) -> str:
    import sqlite3

    db = sqlite3.connect(f"file:{mount.store / '.semfs' / 'catalog.sqlite3'}?mode=ro", uri=True)
    try:
        row = db.execute(
            "SELECT d.caption FROM descriptions d JOIN files f ON f.id = d.file_id "
            "WHERE f.dir = x'' AND f.name = ?",
            (name,),
        ).fetchone()
    finally:
        db.close()
    return "" if row is None else str(row[0])


WRITER = """
import os, sys
path, start, byte = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
fd = os.open(path, os.O_WRONLY)
for block in range(64):
    os.pwrite(fd, byte * 4096, start + 2 * block * 4096)
os.close(fd)
"""


def test_concurrent_writers_to_one_file(mount: Mount, ingested: dict[str, Any]) -> None:
    """Two processes write interleaved 4 KiB blocks of one file at once: every block
    lands, and the catalog ends with the final content."""
    target = mount.mountpoint / "shared.jpg"
    target.write_bytes(bytes(2 * 64 * 4096))
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(target), str(start), letter])
        for start, letter in ((0, "a"), (4096, "b"))
    ]
    assert [writer.wait(timeout=60) for writer in writers] == [0, 0]
    expected = (b"a" * 4096 + b"b" * 4096) * 64
    assert target.read_bytes() == expected == (mount.store / "shared.jpg").read_bytes()
    wait_for(
        lambda: (catalog_state(mount.store, b"shared.jpg") or ("", ""))[0] == "failed",
        timeout=INGEST_TIMEOUT,
        what="the final content catalogued",
    )
    assert mount.process is not None and mount.process.poll() is None
