"""Random operation sequences on the mount and on a plain directory must agree.

Our own stand-in for fsx/fsstress-style suites: Hypothesis picks operations (writes,
truncates, renames, links, symlinks, chmod, chown, xattr calls) on a small
set of names (so they collide: renames over files, rmdir of full directories, links to
missing targets), applies each to both trees, and compares every outcome (result or
errno) and, after each step, the whole trees: type, owner, mode, links, bytes, xattrs.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from tests.fs.conftest import Mount, wait_for
from tests.fs.test_catalog_mount import assert_catalog_matches_store

PATHS = st.sampled_from(
    ["a", "b", "c.jpg", "a/b", "a/c.jpg", "b/a", "b/d.png", "a/b/e", "a/b/f.PNG", "g.tmp"]
)
DATA = st.binary(max_size=3000)
XATTR_NAMES = st.sampled_from(["user.a", "user.semfs.caption", "user.b"])


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    found: dict[str, tuple[Any, ...]] = {}
    for directory, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = Path(directory, name)
            info = path.lstat()
            key = str(path.relative_to(root))
            mode = stat.S_IMODE(info.st_mode)
            owner = (info.st_uid, info.st_gid)
            if stat.S_ISLNK(info.st_mode):
                found[key] = ("link", owner, os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                found[key] = ("dir", owner, mode, xattrs(path))
            else:
                content = path.read_bytes()
                assert info.st_size == len(content)
                found[key] = ("file", owner, mode, info.st_nlink, content, xattrs(path))
    return found


# The mount adds these to a catalogued file's own xattrs (fs/descriptions.py); a plain
# directory has no catalog to compute them from.
COMPUTED = frozenset({"user.semfs.status", "user.semfs.keywords"})


def own_xattrs(path: Path) -> list[str]:
    return sorted(name for name in os.listxattr(path) if name not in COMPUTED)


def xattrs(path: Path) -> dict[str, bytes]:
    return {name: os.getxattr(path, name) for name in own_xattrs(path)}


def outcome(action: Callable[[Path], Any], root: Path) -> tuple[str, Any]:
    try:
        return ("ok", action(root))
    except OSError as error:
        return ("error", error.errno)


def make_machine(mounted_root: Path, plain_root: Path) -> type[RuleBasedStateMachine]:
    cases = itertools.count()

    class SameAsPlainDirectory(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            case = f"case{next(cases)}"
            self.ours = mounted_root / case
            self.theirs = plain_root / case
            self.ours.mkdir()
            self.theirs.mkdir()

        def both(self, action: Callable[[Path], Any]) -> None:
            ours, theirs = outcome(action, self.ours), outcome(action, self.theirs)
            assert ours == theirs

        @rule(path=PATHS, data=DATA, append=st.booleans())
        def write(self, path: str, data: bytes, append: bool) -> None:
            def act(root: Path) -> int:
                with open(root / path, "ab" if append else "wb") as file:
                    return file.write(data)

            self.both(act)

        @rule(path=PATHS, size=st.integers(0, 5000))
        def truncate(self, path: str, size: int) -> None:
            self.both(lambda root: os.truncate(root / path, size))

        @rule(path=PATHS, offset=st.integers(0, 4000), size=st.integers(0, 2000))
        def read(self, path: str, offset: int, size: int) -> None:
            def act(root: Path) -> bytes:
                with open(root / path, "rb") as file:
                    file.seek(offset)
                    return file.read(size)

            self.both(act)

        @rule(path=PATHS, mode=st.sampled_from([0o700, 0o755, 0o644, 0o600]))
        def mkdir(self, path: str, mode: int) -> None:
            self.both(lambda root: os.mkdir(root / path, mode))

        @rule(path=PATHS)
        def rmdir(self, path: str) -> None:
            self.both(lambda root: os.rmdir(root / path))

        @rule(path=PATHS)
        def unlink(self, path: str) -> None:
            self.both(lambda root: os.unlink(root / path))

        @rule(source=PATHS, destination=PATHS)
        def rename(self, source: str, destination: str) -> None:
            self.both(lambda root: os.rename(root / source, root / destination))

        @rule(source=PATHS, destination=PATHS)
        def link(self, source: str, destination: str) -> None:
            self.both(lambda root: os.link(root / source, root / destination))

        @rule(pointing_to=PATHS, path=PATHS)
        def symlink(self, pointing_to: str, path: str) -> None:
            self.both(lambda root: os.symlink(pointing_to, root / path))

        @rule(path=PATHS, mode=st.sampled_from([0o600, 0o644, 0o755, 0o4755]))
        def chmod(self, path: str, mode: int) -> None:
            self.both(lambda root: os.chmod(root / path, mode))

        @rule(
            path=PATHS,
            name=XATTR_NAMES,
            value=st.binary(max_size=300),
            flags=st.sampled_from([0, os.XATTR_CREATE, os.XATTR_REPLACE]),
        )
        def setxattr(self, path: str, name: str, value: bytes, flags: int) -> None:
            self.both(lambda root: os.setxattr(root / path, name, value, flags))

        @rule(path=PATHS, name=XATTR_NAMES)
        def getxattr(self, path: str, name: str) -> None:
            self.both(lambda root: os.getxattr(root / path, name))

        @rule(path=PATHS)
        def listxattr(self, path: str) -> None:
            self.both(lambda root: own_xattrs(root / path))

        @rule(path=PATHS, name=XATTR_NAMES)
        def removexattr(self, path: str, name: str) -> None:
            self.both(lambda root: os.removexattr(root / path, name))

        @rule(path=PATHS, owner=st.sampled_from([(0, 0), (1000, 1000), (1234, 0)]))
        def chown(self, path: str, owner: tuple[int, int]) -> None:
            self.both(lambda root: os.chown(root / path, *owner, follow_symlinks=False))

        @rule(path=PATHS)
        def listdir(self, path: str) -> None:
            self.both(lambda root: sorted(os.listdir(root / path)))

        @invariant()
        def trees_agree(self) -> None:
            assert snapshot(self.ours) == snapshot(self.theirs)

    return SameAsPlainDirectory


def catalog_matches_store(store: Path) -> bool:
    try:
        assert_catalog_matches_store(store)
    except AssertionError:
        return False
    return True


def test_random_operations_agree_with_a_plain_directory(mounted: Mount, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    machine = make_machine(mounted.mountpoint, plain)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=150,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        ),
    )
    # Every sequence (renames of directories holding images, images renamed to other
    # names and back, links, overwrites) must leave the catalog describing the store.
    with contextlib.suppress(AssertionError):
        wait_for(lambda: catalog_matches_store(mounted.store), what="catalog to converge")
    assert_catalog_matches_store(mounted.store)  # shows the difference if it did not
