"""POSIX corners found by pjdfstest and stress-ng runs against the mount (kept as tests)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from semfs.store.syscalls import RENAME_EXCHANGE, renameat2
from tests.fs.conftest import Mount, is_mounted, semfs, wait_for
from tests.fs.test_catalog_mount import assert_catalog_matches_store, catalog_of


def test_paths_near_path_max_work_through_the_mount(mounted: Mount) -> None:
    """Paths that fit in PATH_MAX from a working directory deep in the mount, as
    pjdfstest makes them, are longer than PATH_MAX from the mount's root: they work."""
    workdir = "w" * 40
    (mounted.mountpoint / workdir).mkdir()
    component = b"d" * 254
    deep = b"/".join([component] * 16)  # 4,079 bytes; 4,120 from the mount's root
    mount_fd = os.open(mounted.mountpoint / workdir, os.O_PATH)
    store_fd = os.open(mounted.store / workdir, os.O_PATH)
    try:
        for depth in range(1, 17):
            os.mkdir(b"/".join([component] * depth), dir_fd=mount_fd)
        leaf = deep + b"/leaf.jpg"
        fd = os.open(leaf, os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=mount_fd)
        os.write(fd, b"deep")
        os.setxattr(fd, "user.k", b"v")
        os.close(fd)
        os.chmod(leaf, 0o600, dir_fd=mount_fd)
        os.utime(leaf, ns=(1, 2), dir_fd=mount_fd)
        assert os.stat(leaf, dir_fd=store_fd).st_size == 4
        assert stat.S_IMODE(os.stat(leaf, dir_fd=store_fd).st_mode) == 0o600
        assert os.stat(leaf, dir_fd=store_fd).st_mtime_ns == 2
        os.rename(leaf, deep + b"/moved.jpg", src_dir_fd=mount_fd, dst_dir_fd=mount_fd)
        os.unlink(deep + b"/moved.jpg", dir_fd=mount_fd)
        for depth in range(16, 0, -1):
            os.rmdir(b"/".join([component] * depth), dir_fd=mount_fd)
        assert os.listdir(mounted.store / workdir) == []
    finally:
        os.close(mount_fd)
        os.close(store_fd)


def test_set_id_bits_survive_creation(mounted: Mount) -> None:
    old = os.umask(0)
    try:
        fd = os.open(mounted.mountpoint / "suid", os.O_CREAT | os.O_WRONLY, 0o4755)
        os.close(fd)
        os.mkfifo(mounted.mountpoint / "fifo", 0o2644)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(mounted.store / "suid").st_mode) == 0o4755
    assert stat.S_IMODE(os.stat(mounted.store / "fifo").st_mode) == 0o2644


def test_attributes_of_an_unlinked_open_file_can_change(mounted: Mount) -> None:
    with open(mounted.mountpoint / "gone.txt", "w") as file:
        os.unlink(mounted.mountpoint / "gone.txt")
        os.fchmod(file.fileno(), 0o600)
        os.fchown(file.fileno(), 1234, 4321)
        os.utime(file.fileno(), ns=(7, 8))
        info = os.fstat(file.fileno())
        assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_mtime_ns) == (0o600, 1234, 8)


def test_removed_directory_still_open(mounted: Mount) -> None:
    os.mkdir(mounted.mountpoint / "d")
    fd = os.open(mounted.mountpoint / "d", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.rmdir(mounted.mountpoint / "d")
        assert os.fstat(fd).st_nlink == 0
        assert os.listdir(fd) == []
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def test_listings_show_dot_entries(mounted: Mount) -> None:
    listing = subprocess.run(
        ["ls", "-a", str(mounted.mountpoint / "animals")], capture_output=True, text=True
    )
    assert listing.stdout.split() == [".", "..", "cat.png"]
    root = os.stat(mounted.mountpoint)
    dotdot = os.stat(mounted.mountpoint / "animals" / "..")
    assert root.st_ino == dotdot.st_ino


def test_exchanging_a_file_and_a_directory_keeps_the_catalog_right(mounted: Mount) -> None:
    mnt = mounted.mountpoint
    fd = os.open(mnt, os.O_PATH)
    try:
        renameat2(fd, b"coffee.png", fd, b"animals", RENAME_EXCHANGE)
    finally:
        os.close(fd)
    assert (mnt / "coffee.png" / "cat.png").is_file()
    assert (mnt / "animals").is_file()
    wait_for(lambda: _catalogued(mounted.store, "coffee.png/cat.png"), what="exchange applied")
    assert_catalog_matches_store(mounted.store)


def _catalogued(store: Path, path: str) -> bool:
    from tests.fs.test_catalog_mount import catalog_of

    return path in catalog_of(store)


def test_allow_other_reaches_the_daemon(open_to_all: Path, store: Path) -> None:
    shared_store = open_to_all / "store"
    shutil.copytree(store, shared_store)
    mnt = open_to_all / "mnt"
    mnt.mkdir()
    semfs("mount", "--allow-other", shared_store, mnt)
    try:
        as_nobody = subprocess.run(
            ["ls", str(mnt)], user=65534, group=65534, capture_output=True, text=True
        )
        assert as_nobody.returncode == 0, as_nobody.stderr
        assert "rocket.jpg" in as_nobody.stdout
    finally:
        semfs("unmount", mnt)
    assert not is_mounted(mnt)


def test_inode_numbers_are_the_stores_and_survive_forgetting(mounted: Mount) -> None:
    names = ["rocket.jpg", "animals", "animals/cat.png"]
    before = {name: os.stat(mounted.mountpoint / name).st_ino for name in names}
    assert before == {name: os.stat(mounted.store / name).st_ino for name in names}
    Path("/proc/sys/vm/drop_caches").write_text("2")  # the kernel forgets the inodes
    after = {name: os.stat(mounted.mountpoint / name).st_ino for name in names}
    assert after == before
    os.rename(mounted.mountpoint / "rocket.jpg", mounted.mountpoint / "animals" / "r.jpg")
    assert os.stat(mounted.mountpoint / "animals" / "r.jpg").st_ino == before["rocket.jpg"]


def test_directory_swapped_for_a_symlink_in_the_store_cannot_lead_outside(
    mounted: Mount, tmp_path: Path
) -> None:
    """The daemon runs as root: if someone with access to the store replaces a directory
    the kernel knows with a symlink to elsewhere, requests through the mount must not
    follow it out of the store."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"not yours")
    assert os.listdir(mounted.mountpoint / "animals") == ["cat.png"]  # the kernel caches it
    shutil.rmtree(mounted.store / "animals")
    os.symlink(outside, mounted.store / "animals")
    for attempt in (
        lambda: (mounted.mountpoint / "animals" / "planted.jpg").write_bytes(b"x"),
        lambda: (mounted.mountpoint / "animals" / "secret.jpg").read_bytes(),
        lambda: os.mkdir(mounted.mountpoint / "animals" / "sub"),
    ):
        with pytest.raises(OSError):
            attempt()
    assert sorted(os.listdir(outside)) == ["secret.jpg"]


def test_a_write_through_mmap_reaches_the_catalog(mounted: Mount) -> None:
    """Pages dirtied through a shared mapping are written back before the release, which
    the change tracker reports even if the descriptor was closed long before."""
    import mmap

    path = mounted.mountpoint / "mapped.jpg"
    path.write_bytes(b"\0" * 8192)
    wait_for(lambda: catalog_of(mounted.store).get("mapped.jpg", (0, 0, None))[1] == 8192)
    before = catalog_of(mounted.store)["mapped.jpg"][2]
    fd = os.open(path, os.O_RDWR)
    mapping = mmap.mmap(fd, 8192)
    os.close(fd)  # the mapping keeps the file open
    mapping[100:104] = b"JPEG"
    mapping.close()
    assert (mounted.store / "mapped.jpg").read_bytes()[100:104] == b"JPEG"
    wait_for(lambda: catalog_of(mounted.store)["mapped.jpg"][2] != before, what="new hash")
    assert_catalog_matches_store(mounted.store)
