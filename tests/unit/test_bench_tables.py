"""scripts/benchlib/tables.py: the Markdown tables every benchmark report writes."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def table() -> Callable[..., list[str]]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from benchlib import tables

    function: Callable[..., list[str]] = tables.table  # scripts/ is not type-checked
    return function


def test_a_table_has_its_header_alignment_and_rows(table: Callable[..., list[str]]) -> None:
    lines = table(["Images", "Engine", "p50"], "rlr", [["100 k", "annoy", "1.2 ms"], [5, "-", 0]])
    assert lines == [
        "| Images | Engine | p50 |",
        "|--:|---|--:|",
        "| 100 k | annoy | 1.2 ms |",
        "| 5 | - | 0 |",
    ]


def test_an_alignment_a_column(table: Callable[..., list[str]]) -> None:
    with pytest.raises(ValueError, match="3 columns but 2 alignments"):
        table(["a", "b", "c"], "rl", [])
