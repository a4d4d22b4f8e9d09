"""The ingest benchmark runs end to end at tiny sizes (CI runs only this smoke version;
its figures are not checked, only that it measured what it says)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(300)


def test_bench_ingest_smoke(tmp_path: Path) -> None:
    output = tmp_path / "ingest.md"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_ingest.py"), "--smoke",
         "--output", str(output)],
        check=True, capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    text = output.read_text()
    ratio = re.search(r"\| `cp -r` 12 photos \| .* \| \*\*([0-9.]+)x\*\* \|", text)
    assert ratio and float(ratio.group(1)) > 0
    # The drain clock waits for the copied photos themselves, not just an empty queue
    # (the tracker queues a file after 0.1 s of quiet: the queue is empty before that).
    assert "queue is empty: 12 of 12 photos in every run" in " ".join(text.split())
    rate = re.search(r"\| `classifier:efficientnet-lite0` \|.*\| \*\*([0-9.]+)\*\* \| 0 \|", text)
    assert rate and float(rate.group(1)) > 0  # every photo indexed, none failed
    assert re.search(r"2 times: p50 \*\*[0-9.]+ m?s\*\*", text)
    assert output.with_suffix(".png").stat().st_size > 1000
