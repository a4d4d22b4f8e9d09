"""scripts/bench_index_sweep.py --smoke: every engine measured, recall in [0, 1], exact 1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENGINES = {
    "exact f32", "exact f16", "exact int8", "exact int8 + re-rank", "annoy",
    "faiss IVFFlat (mmap)", "faiss IVF-SQ8 (mmap)", "faiss IVF-SQ8 + re-rank (mmap)", "hnswlib",
}  # fmt: skip
DISTINCT = {"annoy (distinct)", "exact (distinct)"}


def test_smoke_sweep_measures_every_engine(tmp_path: Path) -> None:
    pytest.importorskip("faiss")
    pytest.importorskip("hnswlib")
    pytest.importorskip("matplotlib")
    out = tmp_path / "results.json"
    page = tmp_path / "sweep.md"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_index_sweep.py"), "--smoke",
         "--work", str(tmp_path / "work"), "--json", str(out), "--output", str(page)],
        check=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    data = json.loads(out.read_text())
    assert {r["kind"] for r in data["results"]} == {"synthetic", "real", "sentences"}
    for result in data["results"]:
        engines = {row["engine"] for row in result["rows"]}
        assert engines >= ENGINES, (result["kind"], result["size"], ENGINES - engines)
        if result["kind"] == "real":  # identical captions: the distinct-vector engines too
            assert engines >= DISTINCT
        for row in result["rows"]:
            for value in (row["recall_tune"], row["recall_held"]):
                assert 0.0 <= value <= 1.0, row
            assert row["p50_ms"] > 0 and row["p95_ms"] >= row["p50_ms"], row
            if row["engine"] in ("exact f32", "exact (distinct)"):
                assert row["recall_tune"] == row["recall_held"] == 1.0, row
    rss = [r for r in data["results"] if r.get("rss")]
    assert rss and all(item["after_queries"]["RssFile"] > 0 for r in rss for item in r["rss"])
    text = page.read_text()
    assert "Cheapest setting of each engine" in text and "RssAnon" in text
    assert list(tmp_path.glob("sweep-*.png"))
