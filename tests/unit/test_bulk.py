"""`semfs index` and `semfs search` without a mount: a Hugging Face captioner from a
local directory, switching the embedder (re-embeds, never re-captions), resuming."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.unit.test_models import tiny_captioner_dir


def semfs(*args: str | Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "semfs", *map(str, args)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def rows(store: Path, sql: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(store / ".semfs" / "catalog.sqlite3")
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_index_with_a_local_hf_captioner_then_switch_the_embedder(
    tmp_path: Path, photos: dict[str, Path]
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    for name in ("coffee.png", "rocket.jpg"):
        shutil.copy(photos[name], store / name)
    model = tiny_captioner_dir(tmp_path / "tiny-captioner", word="cat")

    summary = semfs("index", store, "--quiet", "--captioner", f"transformers:{model}")
    assert "indexed 2, failed 0" in summary
    captions = rows(store, "SELECT caption, captioner FROM descriptions")
    assert {captioner for _, captioner in captions} == {f"transformers:{model}"}
    assert all(str(caption).startswith("cat") for caption, _ in captions)
    found = json.loads(semfs("search", store, "a cat", "--json", "--max-distance", "2"))
    assert {hit["path"] for hit in found} == {"coffee.png", "rocket.jpg"}

    before = rows(store, "SELECT file_id, caption, captioner FROM descriptions ORDER BY file_id")
    semfs("index", store, "--quiet", "--embedder", "onnx:paraphrase-MiniLM-L3-v2")
    after = rows(store, "SELECT file_id, caption, captioner FROM descriptions ORDER BY file_id")
    assert after == before  # the captions stay: only the vectors are made again
    assert rows(store, "SELECT DISTINCT embedder FROM vectors") == [
        ("onnx:paraphrase-MiniLM-L3-v2",)
    ]
    found = json.loads(
        semfs("search", store, "a cat", "--json", "--max-distance", "2",
              "--embedder", "onnx:paraphrase-MiniLM-L3-v2")
    )  # fmt: skip
    assert len(found) == 2


def test_search_before_any_index_is_explained(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "semfs", "search", str(tmp_path), "anything"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "no catalog yet" in result.stderr and "Traceback" not in result.stderr


def test_index_shows_progress_with_rate_and_time_left_then_a_summary(store: Path) -> None:
    (store / "fake.jpg").write_text("a shopping list, not a photo\n")
    result = subprocess.run(
        [sys.executable, "-m", "semfs", "index", str(store), "--workers", "1"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # tqdm's bar, last drawn at the end: done/total [elapsed<left, rate]
    assert re.search(r"indexing: 100%.*\| 4/4 \[\d\d:\d\d<\d\d:\d\d, +[\d.]+(image/s|s/image)\]",
                     result.stderr), result.stderr  # fmt: skip
    assert result.stdout.startswith("indexed 3, failed 1, still queued 0\n  failed: fake.jpg: ")
