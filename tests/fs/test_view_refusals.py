"""What the views refuse, as the shell's tools report it through a real mount: the views'
folders in the root cannot be removed or moved (EBUSY), nothing but a query or an example
can be made inside them (EROFS, not the EEXIST every name under search/ would get), and
an empty file copied into similar/ fails its close (EINVAL); none of it leaves anything
in the store or the catalog."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from tests.fs.conftest import Mount, wait_for
from tests.fs.test_search import catalog_rows, expect_errno

BUSY = "Device or resource busy"
READ_ONLY = "Read-only file system"


def run(*command: str, cwd: Path) -> str:
    """A shell tool's complaint: it must fail, and say why on stderr."""
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode != 0, f"{command} succeeded"
    return done.stderr


def store_tree(store: Path) -> list[str]:
    return sorted(
        str(path.relative_to(store))
        for path in store.rglob("*")
        if path.relative_to(store).parts[0] != ".semfs"
    )


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (("rmdir", "search"), f"rmdir: failed to remove 'search': {BUSY}"),
        (("rmdir", "tags"), f"rmdir: failed to remove 'tags': {BUSY}"),
        (("mv", "search", "X"), f"mv: cannot move 'search' to 'X': {BUSY}"),
        (("mv", "similar", "animals"), f"mv: cannot move 'similar' to 'animals/similar': {BUSY}"),
        (("mv", "-T", "animals", "tags"), f"mv: cannot move 'animals' to 'tags': {BUSY}"),
        # The kernel answers unlink(2) of a directory itself, before asking the mount.
        (("unlink", "search"), "unlink: cannot unlink 'search': Is a directory"),
        (("ln", "-sT", "/etc/passwd", "search/x"),
         f"ln: failed to create symbolic link 'search/x': {READ_ONLY}"),
        (("ln", "-s", "/etc/passwd", "search/a cat/"),
         f"ln: failed to create symbolic link 'search/a cat/passwd': {READ_ONLY}"),
        (("mknod", "search/fifo", "p"), f"mknod: search/fifo: {READ_ONLY}"),
        (("ln", "-T", "coffee.png", "search/y"),
         f"ln: failed to create hard link 'search/y': {READ_ONLY}"),
        # mv looks first (stat), and every name under search/ is a query's folder.
        (("mv", "coffee.png", "search/"),
         "mv: cannot overwrite directory 'search/coffee.png' with non-directory"),
        (("touch", "search/new file"), f"touch: cannot touch 'search/new file': {READ_ONLY}"),
        (("mknod", "tags/fifo", "p"), f"mknod: tags/fifo: {READ_ONLY}"),
        (("ln", "-s", "/etc/passwd", "similar/link"),
         f"ln: failed to create symbolic link 'similar/link': {READ_ONLY}"),
    ],
)  # fmt: skip
def test_the_views_refuse_what_cannot_be_done_there(
    mounted: Mount, command: tuple[str, ...], message: str
) -> None:
    before = store_tree(mounted.store)
    assert run(*command, cwd=mounted.mountpoint).strip() == message
    assert store_tree(mounted.store) == before
    assert sorted(os.listdir(mounted.mountpoint))[-3:] == ["search", "similar", "tags"]
    assert "places" in os.listdir(mounted.mountpoint)
    assert catalog_rows(mounted.store, "SELECT count(*) FROM saved_queries") == [(0,)]
    assert catalog_rows(mounted.store, "SELECT count(*) FROM examples") == [(0,)]


def test_only_the_name_being_made_is_absent_to_its_maker(mounted: Mount) -> None:
    """A folder on the way to the new name is still a query, and mkdir still saves one."""
    search = mounted.mountpoint / "search"
    expect_errno(errno.EROFS, os.symlink, "/etc/passwd", search / "a cat" / "link")
    expect_errno(errno.EROFS, (search / "a cat" / "new.txt").write_text, "x")
    expect_errno(errno.EROFS, os.mknod, search / "a cat")  # a regular file, by mknod
    expect_errno(errno.EROFS, os.rename, mounted.mountpoint / "coffee.png", search / "a cat")
    expect_errno(errno.EROFS, os.link, mounted.mountpoint / "coffee.png", search / "a cat")
    os.mkdir(search / "a cat")
    assert os.listdir(search) == ["a cat"]
    expect_errno(errno.EEXIST, os.symlink, "/etc/passwd", search / "a cat")  # it is saved now
    os.rmdir(search / "a cat")


def test_an_empty_copy_into_similar_fails_its_close_and_leaves_nothing(
    mounted: Mount, tmp_path: Path
) -> None:
    similar = mounted.mountpoint / "similar"
    (tmp_path / "empty.jpg").write_bytes(b"")
    before = store_tree(mounted.store)
    complaint = run("cp", str(tmp_path / "empty.jpg"), str(similar), cwd=tmp_path)
    assert "Invalid argument" in complaint, complaint
    wait_for(
        lambda: "similar/empty.jpg refused (EINVAL): empty file (0 bytes)" in mounted.log_text(),
        5,
        "the log line",
    )
    assert os.listdir(similar) == []
    assert not (similar / "empty.jpg").exists()
    assert catalog_rows(mounted.store, "SELECT count(*) FROM examples") == [(0,)]
    assert store_tree(mounted.store) == before
    uploads = mounted.store / ".semfs" / "uploads"
    assert not uploads.exists() or os.listdir(uploads) == []
