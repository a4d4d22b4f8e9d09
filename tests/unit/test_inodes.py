"""The inode table's bookkeeping, on real stat results."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from semfs.fs.inodes import ALLOCATED_BASE, ROOT_INODE, InodeTable


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "e" / "f.jpg").write_bytes(b"x")
    return tmp_path


def table_for(root: Path) -> InodeTable:
    info = os.lstat(root)
    return InodeTable((info.st_dev, info.st_ino))


def test_paths_follow_directory_renames(tree: Path) -> None:
    table = table_for(tree)
    d = table.remember(ROOT_INODE, b"d", os.lstat(tree / "d"))
    e = table.remember(d.number, b"e", os.lstat(tree / "d" / "e"))
    f = table.remember(e.number, b"f.jpg", os.lstat(tree / "d" / "e" / "f.jpg"))
    assert table.path(f.number) == b"d/e/f.jpg"
    table.renamed((ROOT_INODE, b"d"), (ROOT_INODE, b"moved"), replaced_last_link=False)
    assert table.path(f.number) == b"moved/e/f.jpg"
    assert table.lookup_link(ROOT_INODE, b"d") is None


def test_hard_links_share_an_inode(tree: Path) -> None:
    os.link(tree / "d" / "e" / "f.jpg", tree / "g.jpg")
    table = table_for(tree)
    a = table.remember(ROOT_INODE, b"g.jpg", os.lstat(tree / "g.jpg"))
    d = table.remember(ROOT_INODE, b"d", os.lstat(tree / "d"))
    e = table.remember(d.number, b"e", os.lstat(tree / "d" / "e"))
    b = table.remember(e.number, b"f.jpg", os.lstat(tree / "d" / "e" / "f.jpg"))
    assert a.number == b.number and len(a.links) == 2
    table.increment(a.number)  # the kernel holds it
    table.unlinked(ROOT_INODE, b"g.jpg", was_last_link=False)
    assert table.path(a.number) == b"d/e/f.jpg"


def test_inode_lives_until_forgotten(tree: Path) -> None:
    table = table_for(tree)
    d = table.remember(ROOT_INODE, b"d", os.lstat(tree / "d"))
    table.increment(d.number, 2)
    table.forget(d.number, 1)
    assert table.known(d.number)
    table.forget(d.number, 1)
    assert not table.known(d.number)
    with pytest.raises(OSError) as caught:
        table.get(d.number)
    assert caught.value.errno == errno.ESTALE
    again = table.remember(ROOT_INODE, b"d", os.lstat(tree / "d"))
    assert again.number == d.number == os.lstat(tree / "d").st_ino  # stable: the store's


def test_unlinked_open_file_keeps_inode_but_loses_its_name(tree: Path) -> None:
    table = table_for(tree)
    f = table.remember(ROOT_INODE, b"x", os.lstat(tree / "d"))
    table.increment(f.number)
    table.opened(f.number)
    table.unlinked(ROOT_INODE, b"x", was_last_link=True)
    with pytest.raises(OSError) as caught:
        table.path(f.number)
    assert caught.value.errno == errno.ENOENT
    # The same (st_dev, st_ino) showing up again is a new file: a new inode.
    again = table.remember(ROOT_INODE, b"y", os.lstat(tree / "d"))
    assert again.number != f.number
    table.closed(f.number)
    table.forget(f.number, 1)
    assert not table.known(f.number)


def test_name_pointing_elsewhere_is_relinked(tree: Path) -> None:
    table = table_for(tree)
    first = table.remember(ROOT_INODE, b"n", os.lstat(tree / "d"))
    second = table.remember(ROOT_INODE, b"n", os.lstat(tree / "d" / "e"))
    assert first.number != second.number
    assert table.lookup_link(ROOT_INODE, b"n") == second.number
    assert not first.links


def fake_stat(device: int, inode: int) -> os.stat_result:
    return os.stat_result((0o100644, inode, device, 1, 0, 0, 0, 0, 0, 0))


def test_numbers_are_backing_inodes_unless_taken_or_foreign() -> None:
    table = InodeTable((5, 2))
    a = table.remember(ROOT_INODE, b"a", fake_stat(5, 100))
    assert a.number == 100
    table.increment(a.number)  # the kernel still holds it after the unlink below
    table.unlinked(ROOT_INODE, b"a", was_last_link=True)
    # The store hands number 100 to a new file while the old inode is alive.
    b = table.remember(ROOT_INODE, b"b", fake_stat(5, 100))
    assert b.number != 100 and b.number >= ALLOCATED_BASE
    other_device = table.remember(ROOT_INODE, b"c", fake_stat(6, 101))
    assert other_device.number >= ALLOCATED_BASE
    one = table.remember(ROOT_INODE, b"one", fake_stat(5, 1))  # 1 is FUSE's root
    assert one.number >= ALLOCATED_BASE
