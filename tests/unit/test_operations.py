"""The FUSE handlers called directly (no kernel, no mount) on a real store and catalog."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyfuse3
import pytest
import trio

from semfs.catalog.database import Catalog
from semfs.catalog.tracker import ChangeTracker, Removed, Renamed, Written
from semfs.config import Settings
from semfs.fs.inodes import ROOT_INODE
from semfs.fs.operations import SemfsOperations
from semfs.fs.passthrough import AttributeChanges, Passthrough
from semfs.fs.views.registry import ViewRegistry, VirtualView


@dataclass
class Caller:
    uid: int = 1000
    gid: int = 1000
    pid: int = 1
    umask: int = 0o022


CTX = Caller()


@dataclass
class Setup:
    ops: SemfsOperations
    fs: Passthrough
    tracker: ChangeTracker
    store: Path

    def changes(self) -> list[object]:
        """Changes reported to the tracker so far (drained)."""
        found = []
        while True:
            try:
                found.append(self.tracker._receive.receive_nowait())
            except trio.WouldBlock:
                return found


class StaticView(VirtualView):
    """A minimal virtual view: one directory with one fixed entry."""

    name = b"virtual"

    def __init__(self, fs: Passthrough) -> None:
        self.root_inode = fs.inodes.allocate()
        self.child = fs.inodes.allocate()
        self.lookups: dict[int, int] = {}

    def owns(self, inode: int) -> bool:
        return inode in (self.root_inode, self.child)

    def _attr(self, inode: int) -> pyfuse3.EntryAttributes:
        attr = pyfuse3.EntryAttributes()
        attr.st_ino = inode
        attr.st_mode = (
            (stat.S_IFDIR | 0o555) if inode == self.root_inode else (stat.S_IFREG | 0o444)
        )
        return attr

    async def lookup(self, parent: int, name: bytes, pid: int) -> pyfuse3.EntryAttributes:
        if parent == ROOT_INODE and name == self.name:
            self.counted(self.root_inode)
            return self._attr(self.root_inode)
        if parent == self.root_inode and name == b"entry":
            self.counted(self.child)
            return self._attr(self.child)
        raise pyfuse3.FUSEError(errno.ENOENT)

    async def getattr(self, inode: int) -> pyfuse3.EntryAttributes:
        return self._attr(inode)

    async def listing(self, inode: int) -> Sequence[tuple[bytes, pyfuse3.EntryAttributes]]:
        return [(b"entry", self._attr(self.child))]

    def counted(self, inode: int) -> None:
        self.lookups[inode] = self.lookups.get(inode, 0) + 1

    def forget(self, inode: int, count: int) -> None:
        self.lookups[inode] -= count


@pytest.fixture
def setup(store: Path) -> Iterator[Setup]:
    settings = Settings.load(store)
    catalog = Catalog.open(settings.catalog_path)
    tracker = ChangeTracker(settings, catalog)
    fs = Passthrough(settings, tracker)
    yield Setup(SemfsOperations(settings, fs), fs, tracker, store)
    fs.close_all()
    catalog.close()


@pytest.fixture
def collect_readdir(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, int, int]]:
    """Stands in for the kernel's readdir buffer: accepts up to `limit` entries a call."""
    replies: list[tuple[bytes, int, int]] = []

    def reply(token: object, name: bytes, attr: pyfuse3.EntryAttributes, next_id: int) -> bool:
        if token is not None and len(replies) >= token:  # type: ignore[operator]
            return False
        replies.append((name, attr.st_ino, next_id))
        return True

    monkeypatch.setattr(pyfuse3, "readdir_reply", reply)
    return replies


async def test_lookup_getattr_and_hidden_state(setup: Setup) -> None:
    attr = await setup.ops.lookup(ROOT_INODE, b"rocket.jpg", CTX)
    assert attr.st_size == (setup.store / "rocket.jpg").stat().st_size
    assert (await setup.ops.getattr(attr.st_ino, CTX)).st_size == attr.st_size
    assert setup.fs.inodes.get(attr.st_ino).lookups == 1
    for name in (b".semfs", b"missing"):  # absent: a negative entry the kernel caches
        negative = await setup.ops.lookup(ROOT_INODE, name, CTX)
        assert negative.st_ino == 0 and negative.entry_timeout > 0
    await setup.ops.forget([(attr.st_ino, 1)])
    assert not setup.fs.inodes.known(attr.st_ino)


async def test_create_write_read_release_reports_the_image(setup: Setup) -> None:
    info, _ = await setup.ops.create(ROOT_INODE, b"new.jpg", 0o666, os.O_RDWR, CTX)
    assert await setup.ops.write(info.fh, 0, b"hello world") == 11
    assert await setup.ops.read(info.fh, 6, 100) == b"world"
    await setup.ops.fsync(info.fh, False)
    await setup.ops.release(info.fh)
    on_disk = (setup.store / "new.jpg").stat()
    assert stat.S_IMODE(on_disk.st_mode) == 0o644  # mode minus the caller's umask
    assert (on_disk.st_uid, on_disk.st_gid) == (1000, 1000)  # owned by the caller
    (change,) = setup.changes()
    assert isinstance(change, Written) and change.paths == (b"new.jpg",)
    assert change.fd is not None and os.pread(change.fd, 100, 0) == b"hello world"
    os.close(change.fd)


async def test_names_changes_are_reported(setup: Setup) -> None:
    animals = await setup.ops.lookup(ROOT_INODE, b"animals", CTX)
    await setup.ops.rename(ROOT_INODE, b"rocket.jpg", animals.st_ino, b"r.jpg", 0, CTX)
    await setup.ops.unlink(animals.st_ino, b"cat.png", CTX)
    await setup.ops.mkdir(ROOT_INODE, b"sub", 0o755, CTX)
    await setup.ops.rmdir(ROOT_INODE, b"sub", CTX)
    changes = setup.changes()
    assert [type(change) for change in changes] == [Renamed, Removed, Removed]
    renamed = changes[0]
    assert isinstance(renamed, Renamed) and renamed.fd is not None
    assert (renamed.old, renamed.new, renamed.is_dir) == (b"rocket.jpg", b"animals/r.jpg", False)
    os.close(renamed.fd)
    assert changes[1:] == [
        Removed(b"animals/cat.png", is_dir=False),
        Removed(b"sub", is_dir=True),
    ]


async def test_rename_noreplace_and_exchange(setup: Setup) -> None:
    with pytest.raises(pyfuse3.FUSEError) as caught:
        await setup.ops.rename(
            ROOT_INODE, b"rocket.jpg", ROOT_INODE, b"coffee.png", pyfuse3.RENAME_NOREPLACE, CTX
        )
    assert caught.value.errno == errno.EEXIST
    rocket = (setup.store / "rocket.jpg").read_bytes()
    await setup.ops.rename(
        ROOT_INODE, b"rocket.jpg", ROOT_INODE, b"coffee.png", pyfuse3.RENAME_EXCHANGE, CTX
    )
    assert (setup.store / "coffee.png").read_bytes() == rocket


async def test_os_errors_become_fuse_errors(setup: Setup) -> None:
    with pytest.raises(pyfuse3.FUSEError) as caught:
        await setup.ops.rmdir(ROOT_INODE, b"animals", CTX)
    assert caught.value.errno == errno.ENOTEMPTY
    with pytest.raises(pyfuse3.FUSEError) as caught:
        await setup.ops.read(12345, 0, 10)
    assert caught.value.errno == errno.EBADF
    with pytest.raises(pyfuse3.FUSEError) as caught:
        await setup.ops.getattr(999_999, CTX)
    assert caught.value.errno == errno.ESTALE


async def test_unexpected_exceptions_become_eio(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(number: int) -> os.stat_result:
        raise ValueError("bug")

    monkeypatch.setattr(setup.fs, "getattr", broken)
    with pytest.raises(pyfuse3.FUSEError) as caught:
        await setup.ops.getattr(ROOT_INODE, CTX)
    assert caught.value.errno == errno.EIO
    assert "internal error in getattr" in caplog.text


async def test_readdir_resumes_at_offsets_and_counts_lookups(
    setup: Setup, collect_readdir: list[tuple[bytes, int, int]]
) -> None:
    fh = await setup.ops.opendir(ROOT_INODE, CTX)
    await setup.ops.readdir(fh, 0, 2)  # type: ignore[arg-type]  # a buffer of two entries
    first = list(collect_readdir)
    assert len(first) == 2
    (setup.store / "late.txt").write_text("x")  # not in this handle's snapshot
    await setup.ops.readdir(fh, first[-1][2], None)  # type: ignore[arg-type]
    names = [name for name, _, _ in collect_readdir]
    assert names[:2] == [b".", b".."]
    assert sorted(names[2:]) == [b"animals", b"coffee.png", b"notes.txt", b"rocket.jpg"]
    for name, inode, _ in collect_readdir[2:]:
        assert setup.fs.inodes.get(inode).lookups == 1, name
    # "." and ".." are the root here; listing them takes no lookup on it.
    assert {inode for _, inode, _ in collect_readdir[:2]} == {ROOT_INODE}
    assert setup.fs.inodes.get(ROOT_INODE).lookups == 1
    await setup.ops.releasedir(fh)


async def test_views_plug_into_the_root(
    setup: Setup, collect_readdir: list[tuple[bytes, int, int]]
) -> None:
    view = StaticView(setup.fs)
    ops = SemfsOperations(Settings.load(setup.store), setup.fs, ViewRegistry([view]))
    fh = await ops.opendir(ROOT_INODE, CTX)
    await ops.readdir(fh, 0, None)  # type: ignore[arg-type]
    assert [name for name, _, _ in collect_readdir][-1] == b"virtual"
    root = await ops.lookup(ROOT_INODE, b"virtual", CTX)
    assert root.st_ino == view.root_inode
    entry = await ops.lookup(root.st_ino, b"entry", CTX)
    assert stat.S_ISREG(entry.st_mode)
    collect_readdir.clear()
    vfh = await ops.opendir(root.st_ino, CTX)
    await ops.readdir(vfh, 0, None)  # type: ignore[arg-type]
    assert collect_readdir == [(b"entry", view.child, 1)]
    await ops.releasedir(vfh)
    for attempt in (
        ops.mkdir(root.st_ino, b"x", 0o755, CTX),
        ops.setattr(entry.st_ino, entry, pyfuse3.SetattrFields(), None, CTX),
        ops.open(entry.st_ino, os.O_WRONLY, CTX),
    ):
        with pytest.raises(pyfuse3.FUSEError) as caught:
            await attempt
        assert caught.value.errno == errno.EROFS
    with pytest.raises(pyfuse3.FUSEError) as caught:
        await ops.mkdir(ROOT_INODE, b"virtual", 0o755, CTX)  # the name is taken
    assert caught.value.errno == errno.EEXIST
    await ops.forget([(entry.st_ino, 1)])
    assert view.lookups[view.child] == 1  # one from lookup + one from readdir, minus one


async def test_statfs_and_xattrs(setup: Setup) -> None:
    data = await setup.ops.statfs(CTX)
    assert data.f_namemax == os.statvfs(setup.store).f_namemax
    attr = await setup.ops.lookup(ROOT_INODE, b"coffee.png", CTX)
    await setup.ops.setxattr(attr.st_ino, b"user.note", b"espresso", CTX)
    assert await setup.ops.getxattr(attr.st_ino, b"user.note", CTX) == b"espresso"
    assert await setup.ops.listxattr(attr.st_ino, CTX) == [b"user.note"]
    await setup.ops.removexattr(attr.st_ino, b"user.note", CTX)
    with pytest.raises(pyfuse3.FUSEError) as caught:
        await setup.ops.getxattr(attr.st_ino, b"user.note", CTX)
    assert caught.value.errno == pyfuse3.ENOATTR


async def test_chmod_of_a_symlink_itself_is_not_supported(setup: Setup) -> None:
    """Linux cannot change a symlink's own mode: EOPNOTSUPP, as on any local fs."""
    os.symlink("rocket.jpg", setup.store / "alias.jpg")
    link = await setup.ops.lookup(ROOT_INODE, b"alias.jpg", CTX)
    # pyfuse3's SetattrFields cannot be filled from Python: call the helper below it.
    changes = AttributeChanges(mode=stat.S_IFLNK | 0o600)
    with pytest.raises(OSError) as caught:
        setup.fs.setattr(link.st_ino, changes, None)
    assert caught.value.errno == errno.EOPNOTSUPP
