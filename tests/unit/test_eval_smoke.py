"""The retrieval-quality harness runs end to end on a few real photos (scripts/eval
--smoke): real models, the real ingest path, a results table with sane metrics."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TUXPAINT = Path("/usr/share/tuxpaint/stamps")


@pytest.mark.timeout(300)
def test_eval_smoke_writes_a_table_of_metrics(tmp_path: Path) -> None:
    output = tmp_path / "results.md"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "eval_retrieval.py"), "--smoke",
         "--output", str(output)],
        check=True, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    text = output.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| classifier:")]
    kinds = {re.search(r"\| (\w+) \(\d+\) \|", row).group(1) for row in rows}  # type: ignore[union-attr]
    expected = {"sentences", "categories"} if TUXPAINT.is_dir() else {"photos"}
    assert kinds == expected
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[0] == "classifier:efficientnet-lite0"
        assert cells[1] == "sentence-transformers:all-MiniLM-L6-v2"
        metrics = [float(cell) for cell in cells[3:10]]  # R@1/5/10, mAP@1/5/10/R
        assert all(0.0 <= value <= 1.0 for value in metrics), row
        assert metrics[0] <= metrics[1] <= metrics[2]  # recall grows with k
    assert "Annoy recall@10" in text and "Relevance cut" in text
