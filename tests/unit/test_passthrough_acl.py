"""ACL xattrs of a store whose filesystem keeps none: "no ACL", not an error, since with
`posix_acl` the kernel asks for them in its permission checks (no mount needed)."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

import pyfuse3
import pytest

from semfs.catalog.database import Catalog
from semfs.catalog.tracker import ChangeTracker
from semfs.config import Settings
from semfs.fs.inodes import ROOT_INODE
from semfs.fs.operations import SemfsOperations
from semfs.fs.passthrough import Passthrough
from semfs.fs.target import StorePath


class Caller:
    uid = gid = 1000
    pid = 1
    umask = 0o022


@pytest.fixture
def ops(store: Path) -> Iterator[SemfsOperations]:
    settings = Settings.load(store)
    catalog = Catalog.open(settings.catalog_path)
    fs = Passthrough(settings, ChangeTracker(settings, catalog))
    yield SemfsOperations(settings, fs)
    fs.close_all()
    catalog.close()


def test_acls_are_enabled_by_default(ops: SemfsOperations) -> None:
    assert ops.enable_acl is True


async def test_a_store_without_acls_has_none(
    ops: SemfsOperations, monkeypatch: pytest.MonkeyPatch
) -> None:
    attr = await ops.lookup(ROOT_INODE, b"notes.txt", Caller())  # type: ignore[arg-type]

    def unsupported(self: StorePath, name: bytes) -> bytes:
        raise OSError(errno.EOPNOTSUPP, "no xattrs here")

    monkeypatch.setattr(StorePath, "getxattr", unsupported)
    for name in (b"system.posix_acl_access", b"system.posix_acl_default"):
        with pytest.raises(pyfuse3.FUSEError) as caught:
            await ops.getxattr(attr.st_ino, name, Caller())  # type: ignore[arg-type]
        assert caught.value.errno == errno.ENODATA
    with pytest.raises(pyfuse3.FUSEError) as caught:  # other names keep the store's answer
        await ops.getxattr(attr.st_ino, b"user.note", Caller())  # type: ignore[arg-type]
    assert caught.value.errno == errno.EOPNOTSUPP
