"""The layers hold, and the diagram in docs/architecture.md is the one the code draws."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def layers(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "layers.py"), *arguments],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_no_module_imports_a_layer_above_it() -> None:
    checked = layers()
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.splitlines()[-1].strip() == "store -> (nothing)"


def test_the_architecture_diagram_is_the_one_the_code_draws() -> None:
    drawn = layers("--mermaid")
    assert drawn.returncode == 0, drawn.stderr
    document = (REPO / "docs" / "architecture.md").read_text()
    pasted = re.search(r"```mermaid\n(.*?)```", document, re.S)
    assert pasted is not None and pasted.group(1) == drawn.stdout, (
        "docs/architecture.md's layer diagram is stale: paste scripts/layers.py --mermaid"
    )
