"""Nobody let in, through a real mount: the daemon (root) never follows a symlink, the
state directory cannot be reached, other users stay out unless asked for and then meet
the files' own permissions, and hostile query text is only text."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from semfs.daemon.mounttable import find_mount
from tests.fs.conftest import Mount, checked_mount, is_mounted, semfs, wait_for

NOBODY = 65534


def as_nobody(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, user=NOBODY, group=NOBODY, capture_output=True, text=True, errors="replace"
    )


def mount_options(mountpoint: Path) -> set[str]:
    entry = find_mount(str(mountpoint))
    assert entry is not None
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            if fields[1] == str(mountpoint):
                return set(fields[3].split(","))
    raise AssertionError("not in /proc/self/mounts")


def test_other_users_are_kept_out_unless_asked_for(open_to_all: Path, store: Path) -> None:
    shared_store = open_to_all / "store"
    shutil.copytree(store, shared_store)
    (shared_store / "private.jpg").write_bytes(b"mine")
    (shared_store / "private.jpg").chmod(0o600)
    mnt = open_to_all / "mnt"
    mnt.mkdir()

    semfs("mount", shared_store, mnt)
    try:
        options = mount_options(mnt)
        assert "default_permissions" in options and "allow_other" not in options
        refused = as_nobody("ls", str(mnt))
        assert refused.returncode != 0 and "Permission denied" in refused.stderr
    finally:
        semfs("unmount", mnt)

    semfs("mount", "--allow-other", shared_store, mnt)
    try:
        assert {"default_permissions", "allow_other"} <= mount_options(mnt)
        assert as_nobody("cat", str(mnt / "rocket.jpg")).returncode == 0  # 0644: readable
        for command in (
            ("cat", str(mnt / "private.jpg")),  # 0600, root's
            ("sh", "-c", f"echo x >> {mnt / 'rocket.jpg'}"),  # not writable by others
            ("touch", str(mnt / "planted.jpg")),  # the root directory is root's, 0755
            ("rm", "-f", str(mnt / "rocket.jpg")),
            ("ls", str(mnt / ".semfs")),
        ):
            result = as_nobody(*command)
            assert result.returncode != 0, command
        assert (shared_store / "rocket.jpg").read_bytes() == store.joinpath(
            "rocket.jpg"
        ).read_bytes()
        assert not (shared_store / "planted.jpg").exists()
    finally:
        semfs("unmount", mnt)
    assert not is_mounted(mnt)


def test_the_state_directory_is_private_and_out_of_reach(mounted: Mount) -> None:
    state = mounted.store / ".semfs"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "catalog.sqlite3").stat().st_mode) == 0o600
    mnt = mounted.mountpoint
    assert ".semfs" not in os.listdir(mnt)
    (mnt / "note.txt").write_text("a file to move")
    attempts: dict[str, tuple[Callable[[], object], int]] = {
        "stat": (lambda: os.stat(mnt / ".semfs"), errno.ENOENT),
        "read the catalog": (
            lambda: (mnt / ".semfs" / "catalog.sqlite3").read_bytes(),
            errno.ENOENT,
        ),
        "mkdir": (lambda: os.mkdir(mnt / ".semfs"), errno.EPERM),
        "create": (lambda: (mnt / ".semfs").write_text("x"), errno.EPERM),
        "rename onto": (lambda: os.rename(mnt / "note.txt", mnt / ".semfs"), errno.EPERM),
        "link": (lambda: os.link(mnt / "note.txt", mnt / ".semfs"), errno.EPERM),
        "symlink": (lambda: os.symlink("/", mnt / ".semfs"), errno.EPERM),
        "rename away": (lambda: os.rename(mnt / ".semfs", mnt / "stolen"), errno.ENOENT),
        "remove": (lambda: shutil.rmtree(mnt / ".semfs"), errno.ENOENT),
    }
    for what, (attempt, code) in attempts.items():
        with pytest.raises(OSError) as refused:
            attempt()
        assert refused.value.errno == code, what
    assert (state / "catalog.sqlite3").is_file() and (mnt / "note.txt").is_file()
    os.mkdir(mnt / "sub")  # the name is reserved only at the top
    (mnt / "sub" / ".semfs").write_text("an ordinary file")
    assert (mounted.store / "sub" / ".semfs").read_text() == "an ordinary file"


def test_symlinks_are_shown_as_links_and_never_followed_by_the_daemon(
    mounted: Mount, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.jpg"
    secret.write_bytes(b"\xff\xd8 not in the store")
    os.utime(secret, ns=(10**18, 10**18))
    before = secret.stat()
    os.symlink(secret, mounted.store / "link.jpg")
    os.symlink(outside, mounted.store / "dirlink")
    mnt = mounted.mountpoint

    for name, target in (("link.jpg", secret), ("dirlink", outside)):
        assert stat.S_ISLNK(os.lstat(mnt / name).st_mode)
        assert os.readlink(mnt / name) == str(target)
    os.utime(mnt / "link.jpg", ns=(5 * 10**17, 5 * 10**17), follow_symlinks=False)
    assert os.lstat(mounted.store / "link.jpg").st_mtime_ns == 5 * 10**17  # the link's own
    os.lchown(mnt / "link.jpg", 1234, 1234)
    assert os.lstat(mounted.store / "link.jpg").st_uid == 1234
    with pytest.raises(OSError) as refused:  # user xattrs are not allowed on symlinks
        os.setxattr(mnt / "link.jpg", "user.semfs.caption", b"x", follow_symlinks=False)
    assert refused.value.errno == errno.EPERM
    after = secret.stat()
    assert (after.st_mtime_ns, after.st_uid, after.st_mode) == (
        before.st_mtime_ns, before.st_uid, before.st_mode)  # fmt: skip
    assert os.listxattr(secret) == []
    # A link to an image is not an image of the store: never catalogued or read.
    (mnt / "new.png").write_bytes(store_photo(mounted))
    status = mounted.wait_status(queued=0)
    assert status["files"] == 4 and "link.jpg" not in str(status)


def store_photo(mounted: Mount) -> bytes:
    return (mounted.store / "coffee.png").read_bytes()


def test_hostile_query_text_is_only_text(mounted: Mount) -> None:
    search = mounted.mountpoint / "search"
    mounted.wait_status(queued=0)
    for query in ("x'); DROP TABLE files; --", 'a photo" OR 1=1 --', "cats 100% * ? [a-z] _"):
        os.listdir(search / query)  # a listing, whatever it holds
    assert mounted.status()["files"] == 3
    assert os.listdir(search / "a cup of coffee") == ["01 coffee.png"]


MEMBER, SHARED_GROUP = 1000, 4242  # a user in the group that may enter shared/


def as_user(uid: int, groups: tuple[int, ...], *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, user=uid, group=uid, extra_groups=list(groups), capture_output=True,
        text=True, errors="replace",
    )  # fmt: skip


def test_results_show_each_user_only_what_their_real_paths_let_them_read(
    open_to_all: Path, photos: dict[str, Path]
) -> None:
    store = open_to_all / "store"
    store.mkdir()
    os.chown(store, MEMBER, MEMBER)  # the store is MEMBER's: its search/ and similar/ too
    for folder, mode, gid in (("private", 0o700, 0), ("shared", 0o750, SHARED_GROUP),
                              ("open", 0o755, 0), ("open/inner", 0o711, 0)):  # fmt: skip
        (store / folder).mkdir(parents=True)
        os.chown(store / folder, 0, gid)
        (store / folder).chmod(mode)
    placed = {
        "private/cat.png": photos["chelsea.png"],  # behind a 0700 folder
        "shared/coffee.png": photos["coffee.png"],  # behind a 0750 folder of SHARED_GROUP
        "open/inner/tabby.png": photos["chelsea.png"],  # x-only folder: reachable by path
        "secret.jpg": photos["rocket.jpg"],  # a 0600 file in an open folder
    }
    for relative, source in placed.items():
        shutil.copy(source, store / relative)
        (store / relative).chmod(0o644)
    (store / "secret.jpg").chmod(0o600)
    # POSIX ACLs (enforced by default, posix_acl): one shuts nobody out of a photo the
    # mode bits let everyone read, one lets nobody read a 0600 photo, one opens a 0700
    # folder to the shared group.
    acls = {
        "open/shut-out.png": ("u:nobody:---", photos["coffee.png"], 0o644),
        "let-in.jpg": ("u:nobody:r--", photos["rocket.jpg"], 0o600),
    }
    for relative, (entry, source, mode) in acls.items():
        shutil.copy(source, store / relative)
        (store / relative).chmod(mode)
        subprocess.run(["setfacl", "-m", entry, store / relative], check=True)
    (store / "group-only").mkdir(mode=0o700)
    subprocess.run(["setfacl", "-m", f"g:{SHARED_GROUP}:r-x", store / "group-only"], check=True)
    shutil.copy(photos["chelsea.png"], store / "group-only" / "kitten.png")
    (store / "group-only" / "kitten.png").chmod(0o644)
    mnt = open_to_all / "mnt"
    mnt.mkdir()
    semfs("mount", "--allow-other", store, mnt)
    try:
        mount = Mount(store, mnt, None, store / ".semfs" / "mount.log")
        mount.wait_status(queued=0, indexed=7)
        everything = mnt / "search" / "a photo @t=2"  # every image, within the cut
        ranked = os.listdir(everything)
        listed_as = {name.partition(" ")[2]: name for name in ranked}  # `02 cat.png`
        assert [name.partition(" ")[0] for name in ranked] == [f"0{n}" for n in range(1, 8)]
        names = ["cat.png", "coffee.png", "kitten.png", "let-in.jpg", "secret.jpg",
                 "shut-out.png", "tabby.png"]  # fmt: skip
        assert sorted(listed_as) == names
        nobody, member = (NOBODY, ()), (MEMBER, (SHARED_GROUP,))
        for user, readable in (
            (nobody, ["let-in.jpg", "tabby.png"]),
            (member, ["coffee.png", "kitten.png", "shut-out.png", "tabby.png"]),
        ):
            listed = as_user(*user, "ls", "-1", str(everything))
            assert listed.returncode == 0, listed.stderr
            shown = listed.stdout.splitlines()  # in rank order, ranks of hidden ones skipped
            assert sorted(shown) == sorted(listed_as[name] for name in readable), user
            for name in names:
                entry = str(everything / listed_as[name])  # cached since root's listing
                read = as_user(*user, "sha256sum", entry)
                path = as_user(*user, "getfattr", "--only-values", "-n", "user.semfs.path", entry)
                caption = as_user(*user, "getfattr", "-n", "user.semfs.caption", entry)
                allowed = name in readable
                assert (read.returncode == 0) == allowed, (user, name, read.stderr)
                assert (path.returncode == 0) == allowed, (user, name, path.stderr)
                assert (caption.returncode == 0) == allowed, (user, name)
                if not allowed:
                    assert name not in read.stdout + path.stdout + caption.stdout
        # The store's owner makes examples in similar/, of the images it may read only.
        refused = as_user(*member, "mkdir", str(mnt / "similar" / "cat.png"))
        assert refused.returncode != 0 and "No such file" in refused.stderr
        made = as_user(*member, "mkdir", str(mnt / "similar" / "coffee.png"))
        assert made.returncode == 0, made.stderr
        assert as_user(*nobody, "mkdir", str(mnt / "similar" / "tabby.png")).returncode != 0
        assert as_user(*nobody, "cat", str(mnt / "private" / "cat.png")).returncode != 0
        tabby = as_user(*nobody, "sha256sum", str(everything / listed_as["tabby.png"]))
        tabby = tabby.stdout.split()[0]
        assert tabby == hashlib.sha256(photos["chelsea.png"].read_bytes()).hexdigest()
        assert sorted(os.listdir(mnt / "similar")) == ["coffee.png"]
    finally:
        semfs("unmount", mnt)


def test_nothing_the_daemon_makes_in_its_state_directory_is_writable_by_others(
    store: Path, tmp_path: Path, photos: dict[str, Path]
) -> None:
    state = store / ".semfs"
    state.mkdir(mode=0o700)
    # Every vector in a base (both indexes), and a log rotated by the daemon itself.
    (state / "config.toml").write_text("rebuild_threshold = 1\nlog_max_bytes = 4000\n")
    with checked_mount(store, tmp_path) as mount:
        mount.wait_status(queued=0, indexed=3)
        (mount.mountpoint / "similar" / "example.png").write_bytes(
            photos["coffee.png"].read_bytes()
        )
        wait_for(lambda: bool(list((state / "index").glob("*.ann")))
                 and bool(list((state / "image-index").glob("*.ann"))),
                 what="the indexes' base files")  # fmt: skip
        for query in range(60):  # a log line each, with --debug: the log rotates
            os.listdir(mount.mountpoint / "search" / f"query number {query}")
        wait_for(lambda: (state / "mount.log.1").exists(), what="a rotated log")
        made = [state, *state.rglob("*")]
        open_to_others = {
            str(path.relative_to(store)): oct(stat.S_IMODE(path.lstat().st_mode))
            for path in made
            if path.lstat().st_mode & 0o022
        }
        assert {"index", "image-index", "uploads"} <= {path.name for path in made}
    assert open_to_others == {}
