"""scripts/benchlib: the Markdown tables every benchmark report writes, the search bench's
targets table and its check that each daemon state held."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


@pytest.fixture
def benchlib() -> Any:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    importlib.import_module("benchlib.mount")  # scripts/ is not type-checked
    importlib.import_module("benchlib.report")
    return importlib.import_module("benchlib")


def test_busy_holds_while_ingest_has_photos_left_and_works(benchlib: Any) -> None:
    held = benchlib.mount.state_held
    queued = {"ingest": 300, "features": 0, "text": 40}
    assert held("busy", queued, {**queued, "ingest": 292}, 0.0)  # a batch stored
    assert held("busy", queued, queued, 0.3)  # no batch stored yet, but its threads ran
    assert not held("busy", queued, queued, 0.02)  # queued, but ingest did nothing
    assert not held("busy", {**queued, "ingest": 8}, {**queued, "ingest": 0}, 0.9)  # ran out
    assert held("stress", {"ingest": 0, "features": 900}, {"ingest": 0, "features": 10}, 0)
    stressed = {"ingest": 0, "features": 900}
    assert held("stress", stressed, stressed, 0.08)  # parked by searches, but it ran
    assert not held("stress", stressed, stressed, 0.0)
    assert not held("idle", {"ingest": 0, "features": 0}, {"ingest": 0, "features": 1}, 0)
    assert held("idle", {"ingest": 0, "features": 0}, {"ingest": 0, "features": 0}, 0)
    # queues empty, but an idle pass (a new store's EXIF facts) kept ingest's threads busy
    assert not held("idle", {"ingest": 0, "features": 0}, {"ingest": 0, "features": 0}, 0.4)


def test_the_targets_table_holds_busy_and_idle_to_the_goal_not_stress(benchlib: Any) -> None:
    def state(p50: float) -> dict[str, Any]:
        return {"ls_p50_ms": p50, "ls_p95_ms": 1.5 * p50, "n": 20, "state_held": True}

    targets = {"100000": {"recall_at_10": 0.99, "idle": state(9.0), "busy": state(12.0),
                          "stress": state(60.0)}}  # fmt: skip
    *_, row = benchlib.report.issue_targets(targets)
    assert "9.0 / 13.5 ms (met)" in row and "12.0 / 18.0 ms (**missed**)" in row
    assert row.endswith("| yes | 60.0 / 90.0 ms | - |")


def test_the_daemons_search_times_are_read_in_either_quotes(benchlib: Any) -> None:
    log = (
        "INFO semfs.fs.views.search: search 'a cat': 3 results in 7.5 ms\n"
        'INFO semfs.fs.views.search: search "a dog\'s bowl": 0 results in 6.0 ms\n'
    )  # the daemon logs the query with %r
    result = benchlib.mount.MountResult()
    benchlib.mount._read_daemon_times(result, log, ["a dog's bowl", "a cat", "never asked"])
    assert result.hits == [0, 3, -1] and result.in_daemon[:2] == [0.006, 0.0075]


def test_the_plots_of_a_run_without_peers(benchlib: Any, tmp_path: Path) -> None:
    """`scripts/bench search --sizes 100000 --json F` measures no peers (--peers does): its
    page's plots were made with zero columns of peers and the run died at the end."""
    run = {
        "size": 100_000,
        "embedder_short": "L3 (onnx)",
        "summary": {"encode_p50": 0.002, "lookup_p50": 0.004, "fuse_p50": 0.001,
                    "new_p50": 0.007},
        "mount": {"rss_mib": {"idle RssAnon": 250.0, "idle RssFile": 90.0,
                              "queries VmHWM": 400.0}},
    }  # fmt: skip
    written = benchlib.report.plot({"runs": [run], "peers": {}}, tmp_path / "bench")
    assert sorted(path.name for path in written) == ["bench-latency.png", "bench-memory.png"]
    assert all(path.stat().st_size > 0 for path in written)


def test_the_daemon_time_of_a_query_is_its_first_search(benchlib: Any) -> None:
    line = "2026-12-07 13:30:00,001 INFO semfs.fs.views.search: search {}: {} results in {} ms\n"
    log = (
        line.format("'a dog'", 50, 7.5)
        + line.format('"a cat\'s toy"', 3, 6.0)
        + line.format("'a dog'", 50, 2.1)  # the watch, again after the index changed
    )
    result = benchlib.mount.MountResult()
    benchlib.mount._read_daemon_times(result, log, ["a dog", "a cat's toy", "a bird"])
    assert result.in_daemon[:2] == [0.0075, 0.006]
    assert result.hits == [50, 3, -1]
