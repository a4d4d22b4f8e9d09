"""BackingStore.lstat resolves a store path in one openat2: it must keep lstat's meaning
and every refusal of the piecewise path (symlinks, '..', paths longer than PATH_MAX)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from semfs.store.backing import BackingStore


@pytest.fixture
def store(tmp_path: Path) -> BackingStore:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "photo.jpg").write_bytes(b"x" * 10)
    (tmp_path / "sub" / "link.jpg").symlink_to("photo.jpg")
    (tmp_path / "dirlink").symlink_to("sub")
    (tmp_path / "outside").symlink_to("/etc")
    return BackingStore(os.fsencode(tmp_path))


def test_lstat_is_lstat_and_a_trailing_symlink_is_the_link(store: BackingStore) -> None:
    assert store.lstat(b"sub/photo.jpg").st_size == 10
    assert stat.S_ISLNK(store.lstat(b"sub/link.jpg").st_mode)
    assert stat.S_ISLNK(store.lstat(b"outside").st_mode)
    assert stat.S_ISDIR(store.lstat(b"").st_mode)


@pytest.mark.parametrize(
    ("path", "code"),
    [
        (b"dirlink/photo.jpg", errno.ELOOP),  # never through a symlink
        (b"outside/passwd", errno.ELOOP),
        (b"sub/../sub/photo.jpg", errno.EINVAL),
        (b"..", errno.EINVAL),
        (b"sub/missing.jpg", errno.ENOENT),
        (b"sub/photo.jpg/x", errno.ENOTDIR),
    ],
)
def test_lstat_refuses_what_the_store_does_not_hold(
    store: BackingStore, path: bytes, code: int
) -> None:
    with pytest.raises(OSError) as caught:
        store.lstat(path)
    assert caught.value.errno == code


def test_a_path_longer_than_path_max_is_resolved_piece_by_piece(tmp_path: Path) -> None:
    name = b"d" * 200
    fd = os.open(tmp_path, os.O_DIRECTORY)
    for _ in range(25):  # 25 x 201 bytes: past PATH_MAX (4096)
        os.mkdir(name, dir_fd=fd)
        inner = os.open(name, os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(os.open(b"deep.jpg", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd))
    os.close(fd)
    relative = b"/".join([name] * 25) + b"/deep.jpg"
    assert len(relative) > 4096
    assert stat.S_ISREG(BackingStore(os.fsencode(tmp_path)).lstat(relative).st_mode)
