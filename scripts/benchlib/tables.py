"""Markdown tables, as the benchmark reports write them: `| a | b |` rows under an
alignment row such as `|--:|---|`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def table(header: Sequence[str], align: str, rows: Iterable[Sequence[object]]) -> list[str]:
    """The lines of a table: `header`'s cells, the alignment row (`align` has a letter a
    column: "r" right-aligned, as for numbers, "l" left), then a line a row."""
    if len(align) != len(header):
        raise ValueError(f"{len(header)} columns but {len(align)} alignments")
    line = "|" + "|".join("--:" if a == "r" else "---" for a in align) + "|"
    return [row(header), line, *(row(cells) for cells in rows)]


def row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"
