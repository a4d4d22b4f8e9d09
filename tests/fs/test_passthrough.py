"""The store through a real mount behaves like the store itself, read and write."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fs.conftest import Mount, checked_mount, wait_for


def tree(root: Path) -> dict[str, tuple[str, int, bytes | str]]:
    """{relative path: (kind, permission bits, content or link target)} of a directory,
    without the store's state and the mount's search view."""
    found: dict[str, tuple[str, int, bytes | str]] = {}
    for directory, dirnames, filenames in os.walk(root):
        if directory == str(root):
            views = (".semfs", "search", "similar", "tags", "places")
            dirnames[:] = [d for d in dirnames if d not in views]
        for name in dirnames + filenames:
            path = Path(directory, name)
            info = path.lstat()
            relative = str(path.relative_to(root))
            perms = stat.S_IMODE(info.st_mode)
            if stat.S_ISLNK(info.st_mode):
                found[relative] = ("link", perms, os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                found[relative] = ("dir", perms, b"")
            else:
                found[relative] = ("file", perms, path.read_bytes())
    return found


def expect_errno(code: int, function: object, *args: object) -> None:
    with pytest.raises(OSError) as caught:
        function(*args)  # type: ignore[operator]
    assert caught.value.errno == code, f"{function}{args}: {caught.value}"


def test_listing_and_attributes_match_the_store(mounted: Mount) -> None:
    mnt, store = mounted.mountpoint, mounted.store
    listed = ["animals", "coffee.png", "notes.txt", "places", "rocket.jpg", "search", "similar",
              "tags"]  # fmt: skip
    assert sorted(os.listdir(mnt)) == listed
    assert tree(mnt) == tree(store)
    for name in ("rocket.jpg", "animals", "animals/cat.png"):
        ours, theirs = os.lstat(mnt / name), os.lstat(store / name)
        for field in ("st_mode", "st_size", "st_uid", "st_gid", "st_nlink", "st_mtime_ns"):
            assert getattr(ours, field) == getattr(theirs, field), (name, field)


def test_state_directory_is_hidden_and_reserved(mounted: Mount) -> None:
    mnt = mounted.mountpoint
    assert ".semfs" not in os.listdir(mnt)
    expect_errno(errno.ENOENT, os.stat, mnt / ".semfs")
    expect_errno(errno.EPERM, os.mkdir, mnt / ".semfs")
    expect_errno(errno.EPERM, os.rename, mnt / "notes.txt", mnt / ".semfs")
    assert (mounted.store / ".semfs" / "catalog.sqlite3").is_file()


def test_shell_tools_copy_move_remove(mounted: Mount, photos: dict[str, Path]) -> None:
    mnt, store = mounted.mountpoint, mounted.store
    subprocess.run(["cp", str(photos["astronaut.png"]), str(mnt / "astro.png")], check=True)
    subprocess.run(["cp", "-r", str(store / "animals"), str(mnt / "pets")], check=True)
    subprocess.run(["mv", str(mnt / "pets"), str(mnt / "animals" / "pets")], check=True)
    subprocess.run(["rm", str(mnt / "coffee.png")], check=True)
    subprocess.run(["mkdir", "-p", str(mnt / "a" / "b" / "c")], check=True)
    subprocess.run(["rm", "-r", str(mnt / "a")], check=True)
    listing = subprocess.run(["ls", "-la", str(mnt)], capture_output=True, text=True, check=True)
    assert "astro.png" in listing.stdout and "coffee.png" not in listing.stdout
    assert (store / "astro.png").read_bytes() == photos["astronaut.png"].read_bytes()
    assert (mnt / "animals/pets/cat.png").read_bytes() == photos["chelsea.png"].read_bytes()
    assert tree(mnt) == tree(store)


def test_read_write_append_truncate_seek(mounted: Mount) -> None:
    mnt, store = mounted.mountpoint, mounted.store
    path = mnt / "data.bin"
    payload = os.urandom(3 * 1024 * 1024 + 17)  # several FUSE write requests, odd size
    path.write_bytes(payload)
    assert (store / "data.bin").read_bytes() == payload
    with open(path, "ab") as file:
        file.write(b"tail")
    with open(path, "r+b") as file:
        file.seek(10)
        file.write(b"XYZ")
        file.seek(8)
        assert file.read(7) == payload[8:10] + b"XYZ" + payload[13:15]
        file.truncate(100)
        os.fsync(file.fileno())
    expected = payload[:10] + b"XYZ" + payload[13:100]
    assert path.read_bytes() == expected == (store / "data.bin").read_bytes()
    os.truncate(path, 5)
    assert (store / "data.bin").read_bytes() == expected[:5]
    os.truncate(path, 0)
    assert path.stat().st_size == 0


def test_directory_errors_come_back_as_errno(mounted: Mount) -> None:
    mnt = mounted.mountpoint
    os.mkdir(mnt / "d")
    (mnt / "d" / "f.txt").write_text("x")
    expect_errno(errno.EEXIST, os.mkdir, mnt / "d")
    expect_errno(errno.ENOTEMPTY, os.rmdir, mnt / "d")
    expect_errno(errno.ENOENT, os.rmdir, mnt / "nope")
    expect_errno(errno.ENOENT, open, mnt / "nope.jpg")
    expect_errno(errno.EISDIR, os.unlink, mnt / "d")
    expect_errno(errno.ENOTDIR, os.listdir, mnt / "notes.txt")
    expect_errno(errno.EISDIR, open, mnt / "d", "w")
    os.unlink(mnt / "d" / "f.txt")
    os.rmdir(mnt / "d")
    assert not (mounted.store / "d").exists()


def test_rename_over_existing_and_across_directories(mounted: Mount) -> None:
    mnt, store = mounted.mountpoint, mounted.store
    rocket = (store / "rocket.jpg").read_bytes()
    os.rename(mnt / "rocket.jpg", mnt / "coffee.png")  # over an existing file
    assert (mnt / "coffee.png").read_bytes() == rocket
    assert not (mnt / "rocket.jpg").exists()
    os.mkdir(mnt / "x")
    os.rename(mnt / "coffee.png", mnt / "x" / "r.jpg")  # across directories
    os.rename(mnt / "animals", mnt / "x" / "animals")  # a directory with contents
    assert (mnt / "x" / "animals" / "cat.png").is_file()
    assert sorted(os.listdir(mnt / "x")) == ["animals", "r.jpg"]
    os.mkdir(mnt / "empty")
    os.rename(mnt / "empty", mnt / "x" / "animals2")
    expect_errno(errno.ENOTEMPTY, os.rename, mnt / "x" / "animals2", mnt / "x")
    assert tree(mnt) == tree(store)


def test_renamed_directory_keeps_open_files_and_children_reachable(mounted: Mount) -> None:
    mnt, store = mounted.mountpoint, mounted.store
    os.makedirs(mnt / "outer" / "inner")
    with open(mnt / "outer" / "inner" / "f.txt", "w") as file:
        file.write("before ")
        file.flush()
        os.rename(mnt / "outer", mnt / "moved")
        file.write("after")
    assert (store / "moved" / "inner" / "f.txt").read_text() == "before after"
    (mnt / "moved" / "inner" / "g.txt").write_text("new")
    assert (store / "moved" / "inner" / "g.txt").read_text() == "new"


def test_symlinks_and_hard_links(mounted: Mount) -> None:
    mnt, store = mounted.mountpoint, mounted.store
    os.symlink("rocket.jpg", mnt / "link.jpg")
    assert os.readlink(mnt / "link.jpg") == "rocket.jpg"
    assert os.readlink(store / "link.jpg") == "rocket.jpg"
    assert (mnt / "link.jpg").read_bytes() == (store / "rocket.jpg").read_bytes()
    os.link(mnt / "rocket.jpg", mnt / "animals" / "hard.jpg")
    a, b = os.stat(mnt / "rocket.jpg"), os.stat(mnt / "animals" / "hard.jpg")
    assert a.st_ino == b.st_ino and a.st_nlink == b.st_nlink == 2
    os.unlink(mnt / "rocket.jpg")
    assert os.stat(mnt / "animals" / "hard.jpg").st_nlink == 1
    expect_errno(errno.EEXIST, os.link, mnt / "coffee.png", mnt / "notes.txt")


def test_chmod_chown_utimens(mounted: Mount) -> None:
    mnt, store = mounted.mountpoint, mounted.store
    os.chmod(mnt / "notes.txt", 0o640)
    os.chown(mnt / "notes.txt", 1234, 4321)
    os.utime(mnt / "notes.txt", ns=(1_000_000_000, 2_000_000_123))
    theirs = os.stat(store / "notes.txt")
    ours = os.stat(mnt / "notes.txt")
    assert stat.S_IMODE(theirs.st_mode) == stat.S_IMODE(ours.st_mode) == 0o640
    assert (theirs.st_uid, theirs.st_gid) == (ours.st_uid, ours.st_gid) == (1234, 4321)
    assert theirs.st_mtime_ns == ours.st_mtime_ns == 2_000_000_123
    assert theirs.st_atime_ns == 1_000_000_000
    with open(mnt / "notes.txt", "r+") as file:
        os.fchmod(file.fileno(), 0o600)
        os.utime(file.fileno(), ns=(5, 6))
    assert stat.S_IMODE(os.stat(store / "notes.txt").st_mode) == 0o600
    assert os.stat(store / "notes.txt").st_mtime_ns == 6


def test_new_files_honour_mode(mounted: Mount) -> None:
    mnt = mounted.mountpoint
    old = os.umask(0o022)
    try:
        fd = os.open(mnt / "m.txt", os.O_CREAT | os.O_WRONLY, 0o666)
        os.close(fd)
        os.mkdir(mnt / "md", 0o777)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(mounted.store / "m.txt").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(mounted.store / "md").st_mode) == 0o755
    expect_errno(errno.EEXIST, os.open, mnt / "m.txt", os.O_CREAT | os.O_EXCL | os.O_WRONLY)


def test_statfs_reports_the_store(mounted: Mount) -> None:
    ours, theirs = os.statvfs(mounted.mountpoint), os.statvfs(mounted.store)
    assert ours.f_namemax == theirs.f_namemax == 255
    assert ours.f_blocks == theirs.f_blocks and ours.f_bsize == theirs.f_bsize


def test_extended_attributes_user_namespace(mounted: Mount) -> None:
    mnt, store = mounted.mountpoint, mounted.store
    os.setxattr(mnt / "rocket.jpg", "user.place", b"Cape Canaveral")
    assert os.getxattr(mnt / "rocket.jpg", "user.place") == b"Cape Canaveral"
    assert os.getxattr(store / "rocket.jpg", "user.place") == b"Cape Canaveral"
    os.setxattr(store / "rocket.jpg", "user.year", b"1969")
    listed = sorted(os.listxattr(mnt / "rocket.jpg"))
    # Beside its own, a catalogued image shows what semfs says of it (fs/descriptions.py).
    assert [name for name in listed if not name.startswith("user.semfs.")] == [
        "user.place", "user.year"]  # fmt: skip
    assert "user.semfs.status" in listed
    os.removexattr(mnt / "rocket.jpg", "user.place")
    assert os.listxattr(store / "rocket.jpg") == ["user.year"]
    expect_errno(errno.ENODATA, os.getxattr, mnt / "rocket.jpg", "user.place")
    expect_errno(errno.ENODATA, os.removexattr, mnt / "rocket.jpg", "user.place")
    os.setxattr(mnt / "animals", "user.kind", b"dir")
    assert os.getxattr(store / "animals", "user.kind") == b"dir"
    os.setxattr(mnt, "user.root", b"top")  # the mount's root is the store's root
    assert os.getxattr(store, "user.root") == b"top"
    assert "user.root" in os.listxattr(mnt)


def test_odd_file_names(mounted: Mount) -> None:
    mnt, store = mounted.mountpoint, mounted.store
    names = [
        "with space.jpg",
        "ünïcödé ☃.png",
        "new\nline.txt",
        "-dash",
        "a" * 255,
        os.fsdecode(b"latin1-\xe9t\xe9.jpg"),  # not UTF-8: must survive as bytes
    ]
    for name in names:
        (mnt / name).write_bytes(name.encode(errors="surrogateescape"))
    listed = set(os.listdir(mnt))
    for name in names:
        assert name in listed
        assert (store / name).read_bytes() == name.encode(errors="surrogateescape")
    expect_errno(errno.ENAMETOOLONG, open, mnt / ("b" * 256), "w")


def test_unlinked_open_file_stays_usable(mounted: Mount) -> None:
    mnt = mounted.mountpoint
    with open(mnt / "ghost.txt", "w+") as file:
        file.write("boo")
        file.flush()
        os.unlink(mnt / "ghost.txt")
        assert os.fstat(file.fileno()).st_size == 3
        file.seek(0)
        assert file.read() == "boo"
    assert not (mounted.store / "ghost.txt").exists()


def test_large_directory_lists_every_entry_once(mounted: Mount) -> None:
    mnt, store = mounted.mountpoint, mounted.store
    (store / "big").mkdir()
    for i in range(3000):
        (store / "big" / f"img_{i:05d}.jpg").write_bytes(b"")
    names = os.listdir(mnt / "big")
    assert len(names) == len(set(names)) == 3000
    # Change the directory while a listing is in progress: no entry that stays may be
    # skipped or repeated.
    seen: list[str] = []
    with os.scandir(mnt / "big") as entries:
        for index, entry in enumerate(entries):
            seen.append(entry.name)
            if index == 100:
                for j in range(0, 3000, 2):
                    (mnt / "big" / f"img_{j:05d}.jpg").unlink(missing_ok=True)
                (mnt / "big" / "late.jpg").write_bytes(b"")
    assert len(seen) == len(set(seen))
    survivors = {f"img_{i:05d}.jpg" for i in range(1, 3000, 2)}
    assert survivors <= set(seen)


def test_mknod_fifo(mounted: Mount) -> None:
    os.mkfifo(mounted.mountpoint / "pipe")
    assert stat.S_ISFIFO(os.lstat(mounted.store / "pipe").st_mode)


def test_store_changes_made_while_mounted_show_up(mounted: Mount) -> None:
    """Changes made beside the mount appear (after the kernel's cache timeout at most)."""
    (mounted.store / "animals" / "direct.txt").write_text("made outside")
    assert (mounted.mountpoint / "animals" / "direct.txt").read_text() == "made outside"
    shutil.rmtree(mounted.store / "animals")
    assert "animals" not in os.listdir(mounted.mountpoint)


# --- with and without the kernel's writeback cache -------------------------------------


@pytest.fixture(params=[False, True], ids=["write-through", "writeback-cache"])
def cache_mounted(request: pytest.FixtureRequest, store: Path, tmp_path: Path) -> Iterator[Mount]:
    """A mount with the writeback cache off (the default) and on (`writeback_cache`)."""
    state = store / ".semfs"
    state.mkdir(exist_ok=True)
    (state / "config.toml").write_text(f"writeback_cache = {str(request.param).lower()}\n")
    with checked_mount(store, tmp_path) as mount:
        yield mount


def test_appends_from_two_handles_both_land_at_the_end(cache_mounted: Mount) -> None:
    """O_APPEND is placed by the kernel (writeback cache), never over earlier data."""
    path = cache_mounted.mountpoint / "log.txt"
    path.write_bytes(b"start\n")
    first = os.open(path, os.O_WRONLY | os.O_APPEND)
    second = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        for i in range(50):
            os.write(first if i % 2 else second, b"line %02d\n" % i)
            os.lseek(first, 0, os.SEEK_SET)  # a seek does not move an appender's writes
        os.fsync(first)
    finally:
        os.close(first)
        os.close(second)
    expected = b"start\n" + b"".join(b"line %02d\n" % i for i in range(50))
    assert path.read_bytes() == expected
    assert (cache_mounted.store / "log.txt").read_bytes() == expected


def test_write_only_open_can_change_part_of_a_page(cache_mounted: Mount) -> None:
    """The kernel reads the rest of a partly written page, even for a write-only open."""
    payload = bytes(range(256)) * 64  # 16 KiB
    (cache_mounted.store / "part.bin").write_bytes(payload)
    fd = os.open(cache_mounted.mountpoint / "part.bin", os.O_WRONLY)
    try:
        assert os.pwrite(fd, b"abc", 5000) == 3
    finally:
        os.close(fd)
    expected = payload[:5000] + b"abc" + payload[5003:]
    assert (cache_mounted.store / "part.bin").read_bytes() == expected
    assert (cache_mounted.mountpoint / "part.bin").read_bytes() == expected


def test_write_is_in_the_store_after_close_and_fsync(cache_mounted: Mount) -> None:
    path = cache_mounted.mountpoint / "synced.bin"
    with open(path, "wb") as file:
        file.write(b"x" * 10_000)
        file.flush()
        os.fsync(file.fileno())
        assert (cache_mounted.store / "synced.bin").read_bytes() == b"x" * 10_000
        file.write(b"y")
    assert (cache_mounted.store / "synced.bin").read_bytes() == b"x" * 10_000 + b"y"
    assert path.stat().st_size == 10_001


def test_file_rewritten_in_place_in_the_store_shows_its_new_content(cache_mounted: Mount) -> None:
    """The kernel keeps its own size of a cached file (writeback cache): the daemon sees the
    change when the attributes expire and makes the kernel forget the inode."""
    inside, beside = cache_mounted.mountpoint / "notes.txt", cache_mounted.store / "notes.txt"
    beside.write_bytes(b"short")
    assert inside.read_bytes() == b"short"
    with open(beside, "r+b") as file:  # same inode, as `cp` over it or `>>` would
        file.write(b"a much longer text")
    wait_for(lambda: inside.stat().st_size == 18, timeout=20, what="the new size")
    assert inside.read_bytes() == b"a much longer text"
