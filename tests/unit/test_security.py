"""Nobody let in: names cannot climb out of the store, the catalog is private, and text
from users (file names, queries, captions) reaches SQL only as parameters."""

from __future__ import annotations

import ast
import errno
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from semfs.catalog.database import Catalog
from semfs.config import Settings
from semfs.store.backing import BackingStore

SOURCES = Path(__file__).resolve().parents[2] / "semfs"
HOSTILE = "x'); DROP TABLE files; --"


@pytest.mark.parametrize(
    "path", [b"..", b"a/..", b"../outside", b"a/../..", b"a/../a", b".", b"a/.", b"a/./b"]
)
def test_dot_and_dot_dot_never_name_an_entry(tmp_path: Path, path: bytes) -> None:
    (tmp_path / "store" / "a").mkdir(parents=True)
    (tmp_path / "outside").write_text("not in the store")
    store = BackingStore(os.fsencode(tmp_path / "store"))
    try:
        for call in (
            lambda: store.lstat(path),
            lambda: store.open(path, os.O_RDONLY),
            lambda: store.mkdir(path + b"/new", 0o755),
            lambda: store.unlink(path),
            lambda: store.rename(b"a", path, 0),
        ):
            with pytest.raises(OSError) as refused:
                call()
            assert refused.value.errno in (errno.EINVAL, errno.EXDEV, errno.ENOENT)
        assert store.lstat(b"a").st_ino == (tmp_path / "store" / "a").stat().st_ino
    finally:
        store.close()
    assert sorted(os.listdir(tmp_path / "store")) == ["a"]


def test_state_directory_and_catalog_are_private(tmp_path: Path) -> None:
    (tmp_path / ".semfs").mkdir(mode=0o755)  # as an older semfs left it
    settings = Settings.load(tmp_path)
    old_umask = os.umask(0)  # the daemon runs with umask 0
    try:
        settings.make_state_dir()
        catalog = Catalog.open(settings.catalog_path)
        catalog.set_meta("written", "yes")  # the WAL and shared-memory files exist now
    finally:
        os.umask(old_umask)
    try:
        assert stat.S_IMODE(settings.state_dir.stat().st_mode) == 0o700
        for name in ("catalog.sqlite3", "catalog.sqlite3-wal", "catalog.sqlite3-shm"):
            assert stat.S_IMODE((settings.state_dir / name).stat().st_mode) == 0o600, name
    finally:
        catalog.close()


class RecordingConnection:
    """Passes everything to the real connection and keeps the SQL text of each call."""

    def __init__(self, db: Any, texts: list[str]) -> None:
        self._db, self._texts = db, texts

    def execute(self, sql: str, *args: Any) -> Any:
        self._texts.append(sql)
        return self._db.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        self._texts.append(sql)
        return self._db.executemany(sql, *args)

    def close(self) -> None:
        self._db.close()


def test_names_and_queries_reach_sql_only_as_parameters(tmp_path: Path) -> None:
    catalog = Catalog.open(tmp_path / "catalog.sqlite3")
    texts: list[str] = []
    catalog._connection._db = RecordingConnection(catalog._connection._db, texts)  # type: ignore[assignment]
    hostile = HOSTILE.encode()
    try:
        catalog.files.upsert(hostile + b".jpg", 1, 1, HOSTILE)
        catalog.files.move(hostile + b".jpg", b"dir/" + hostile + b".png")
        catalog.files.move_tree(b"dir", hostile)
        catalog.queue.requeue(hostile + b"/" + hostile + b".png")
        catalog.reads.save_query(hostile)
        assert catalog.reads.saved_queries() == [hostile]
        assert catalog.files.find_by_hash(HOSTILE)[0].path == hostile + b"/" + hostile + b".png"
        assert catalog.files.files_in_dir(hostile)
        catalog.reads.remove_query(hostile)
        catalog.files.remove_tree(hostile)
        assert catalog.stats().files == 0
    finally:
        catalog.close()
    assert texts and not [text for text in texts if "DROP" in text or "x'" in text]


# Interpolated into SQL text: only names whose values are fixed in the code (column
# lists, table names of the salvage, runs of "?" marks, the schema version, an ORDER BY
# chosen from FILTER_ORDERS).
FIXED_SQL_PIECES = {"FILE_COLUMNS", "SCHEMA_VERSION", "marks", "columns", "table", "order",
                    "HIT_COLUMNS"}  # fmt: skip


def _interpolated_names(node: ast.expr) -> list[str]:
    """Names spliced into an SQL text expression; '?' for anything else spliced."""
    if isinstance(node, ast.Constant):
        return []
    if isinstance(node, ast.Name):
        return [] if node.id.isupper() or node.id in ("query", "insert", "statement") else ["?"]
    if isinstance(node, ast.JoinedStr):
        spliced = [value.value for value in node.values if isinstance(value, ast.FormattedValue)]
        return [v.id if isinstance(v, ast.Name) else "?" for v in spliced]
    if isinstance(node, ast.BinOp):
        return _interpolated_names(node.left) + _interpolated_names(node.right)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id.isupper()
    ):
        return [keyword.arg or "?" for keyword in node.keywords] + ["?"] * len(node.args)
    return ["?"]


def test_sql_text_is_built_from_fixed_pieces_only() -> None:
    found = 0
    wrong: list[str] = []
    for source in SOURCES.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("execute", "executemany", "executescript")
                and node.args
            ):
                found += 1
                spliced = set(_interpolated_names(node.args[0])) - FIXED_SQL_PIECES
                if spliced:
                    wrong.append(f"{source.name}:{node.lineno}: {sorted(spliced)}")
    assert found > 50  # the walk saw the catalog's statements
    assert not wrong, "SQL text built from values: pass them as parameters\n" + "\n".join(wrong)


def test_acl_entries_are_weighed_in_the_kernels_order() -> None:
    """posix_acl_permission(): a named user's entry decides for that user, limited by the
    mask; any matching group entry that grants suffices; else the other entry."""
    import struct

    from semfs.fs.access import GROUP, GROUP_OBJ, MASK, OTHER, USER, USER_OBJ, Caller, permits

    def acl(*entries: tuple[int, int, int]) -> bytes:
        return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)

    file = os.stat_result((0o100640, 0, 0, 1, 0, 50, 0, 0, 0, 0))  # root:50, rw-r-----
    owner_only = acl((USER_OBJ, 6, 0), (USER, 4, 1000), (GROUP_OBJ, 4, 0), (GROUP, 0, 60),
                     (MASK, 4, 0), (OTHER, 0, 0))  # fmt: skip
    named, stranger = Caller.of(1000, 1000, 0), Caller.of(2000, 2000, 0)
    assert permits(named, file, 4, owner_only) and not permits(stranger, file, 4, owner_only)
    masked = acl((USER_OBJ, 6, 0), (USER, 6, 1000), (GROUP_OBJ, 4, 0), (MASK, 0, 0),
                 (OTHER, 4, 0))  # fmt: skip
    assert not permits(named, file, 4, masked)  # the mask takes the named entry's r away
    assert permits(stranger, file, 4, masked)  # others are not masked
    grouped = acl((USER_OBJ, 6, 0), (GROUP_OBJ, 0, 0), (GROUP, 4, 60), (MASK, 4, 0),
                  (OTHER, 0, 0))  # fmt: skip
    member = Caller(2000, 60, 0)  # primary group 60
    assert permits(member, file, 4, grouped) and not permits(stranger, file, 4, grouped)
    assert not permits(stranger, file, 4, b"\x02\x00\x00\x00\x01")  # not an ACL: refused
