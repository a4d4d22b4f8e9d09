"""The passthrough benchmark runs end to end at tiny sizes (what it measures is not checked:
timings on a shared machine are noise; that the table is complete and sane is)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROWS = ["ls-cold", "ls-warm", "cat-cold", "cat-warm", "cp-big", "cp-photos"]
FIO_ROWS = ["fio-seq-write", "fio-seq-read", "fio-rand-write", "fio-rand-read"]


def test_smoke_run_writes_a_table_of_positive_ratios(tmp_path: Path) -> None:
    page, raw = tmp_path / "bench.md", tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_passthrough.py"), "--smoke",
         "--dir", str(tmp_path), "--output", str(page), "--json", str(raw)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = {row["key"]: row for row in json.loads(raw.read_text())["rows"]}
    expected = ROWS + (FIO_ROWS if shutil.which("fio") else [])
    assert sorted(rows) == sorted(expected)
    for row in rows.values():
        assert row["ratio"] > 0 and len(row["native"]) == len(row["mount"]) == 1
    text = page.read_text()
    assert "<!-- results -->" in text and "| Target |" in text
    assert page.with_suffix(".png").stat().st_size > 0
    assert not any(tmp_path.glob("semfs-bench-*")), "the temporary store was left behind"
