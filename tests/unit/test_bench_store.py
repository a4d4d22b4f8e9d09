"""scripts/benchlib/store.py: a bench store reused with --work is the store that was
built, or it is built again."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

EMBEDDER = "onnx:paraphrase-MiniLM-L3-v2"


def collection(count: int = 60, dims: int = 8) -> Any:
    from benchlib.vectors import Collection

    vectors = np.random.default_rng(5).normal(size=(count, dims)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return Collection(vectors, ["a photo of a tabby cat"] * count)


def test_a_store_whose_vectors_were_re_embedded_is_built_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "scripts"))
    from benchlib.store import build_store

    root = tmp_path / "bench-store"
    first = build_store(root, collection(), EMBEDDER)
    assert build_store(root, collection(), EMBEDDER) == first  # reused as it was
    assert "building it again" not in capsys.readouterr().out

    catalog = first.store / ".semfs" / "catalog.sqlite3"
    db = sqlite3.connect(catalog)  # what a mount with another embedder leaves: new rows
    with db:
        db.execute("DELETE FROM vectors WHERE file_id = 7")
        db.execute(
            "INSERT INTO vectors (file_id, embedder, vector) VALUES (7, 'other', ?)", (b"x" * 32,)
        )
    db.close()
    again = build_store(root, collection(), EMBEDDER)
    assert "building it again" in capsys.readouterr().out
    db = sqlite3.connect(catalog)
    rows = db.execute("SELECT count(*) FROM vectors WHERE embedder = ? AND seq = file_id",
                      (EMBEDDER,)).fetchone()  # fmt: skip
    db.close()
    assert rows == (60,) and again.items == 60
