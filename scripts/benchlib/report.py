"""The results as Markdown tables and PNG plots.

The generated part ends at `## Findings`; what follows that heading in an existing output
file (the analysis written by hand) is kept when the file is written again.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from benchlib.tables import table

FINDINGS = "## Findings"
TARGET_P50_MS = {100_000: 10.0, 1_000_000: 20.0}
TARGET_RECALL = 0.95
TARGET_RSS_MIB = 300.0


def ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def size_name(count: int) -> str:
    return f"{count // 1_000_000} M" if count >= 1_000_000 else f"{count // 1000} k"


def latency_table(runs: list[dict[str, Any]]) -> list[str]:
    header = ["Images", "Embedder", "`ls search/<new q>/` p50 / p95", "in the daemon p50",
              "FUSE and the rest p50", "encoding p50", "index + catalog p50",
              "index alone p50", "same query again p50", "`semfs search` via mount p50",
              "`semfs search` unmounted p50"]  # fmt: skip
    rows = []
    for run in runs:
        s = run["summary"]
        rows.append([
            size_name(run["size"]), run["embedder_short"],
            f"{ms(s['new_p50'])} / {ms(s['new_p95'])}", ms(s["daemon_p50"]), ms(s["fuse_p50"]),
            ms(s["encode_p50"]), ms(s["lookup_p50"]), ms(s["index_p50"]), ms(s["again_p50"]),
            ms(s["cli_p50"]), ms(s["cli_own_p50"]),
        ])  # fmt: skip
    return table(header, "rlrrrrrrrrr", rows)


def peers_table(peers: dict[str, list[dict[str, Any]]]) -> list[str]:
    header = ["Vectors", "Method", "Setting", "recall@10", "p50", "p95", "vs exact numpy p50",
              "build", "Note"]  # fmt: skip
    rows = []
    for label, results in peers.items():
        exact = next((r["p50_ms"] for r in results if r["method"] == "exact numpy"), math.nan)
        for r in results:
            speed = exact / r["p50_ms"] if r["p50_ms"] and not math.isnan(r["p50_ms"]) else math.nan
            build = "-" if r["build_s"] is None else f"{r['build_s']:.1f} s"
            rows.append([
                label, r["method"], r["setting"], f"{r['recall']:.3f}", f"{r['p50_ms']:.2f} ms",
                f"{r['p95_ms']:.2f} ms", _speed(speed), build, r["note"],
            ])  # fmt: skip
    return table(header, "lllrrrrrl", rows)


def _speed(ratio: float) -> str:
    if math.isnan(ratio):
        return "-"
    return f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"


def memory_table(runs: list[dict[str, Any]]) -> list[str]:
    header = ["Images", "Embedder", "RSS listable", "RSS idle (anon + file)",
              "RSS during queries (max)", "peak (VmHWM)", "Annoy base on disk",
              "catalog on disk", "build: files / catalog / Annoy"]  # fmt: skip
    rows = []
    for run in runs:
        r, b = run["mount"]["rss_mib"], run["built"]
        rows.append([
            size_name(run["size"]), run["embedder_short"], f"{r['listable']:.0f} MiB",
            f"{r['idle VmRSS']:.0f} ({r['idle RssAnon']:.0f} + {r['idle RssFile']:.0f}) MiB",
            f"{r['queries max VmRSS']:.0f} MiB", f"{r['queries VmHWM']:.0f} MiB",
            f"{b['base_bytes'] / 2**20:.0f} MiB", f"{b['catalog_bytes'] / 2**20:.0f} MiB",
            f"{b['files_seconds']:.0f} / {b['catalog_seconds']:.0f} / {b['base_seconds']:.0f} s",
        ])  # fmt: skip
    return table(header, "rlrrrrrrr", rows)


def startup_table(runs: list[dict[str, Any]]) -> list[str]:
    header = ["Images", "Embedder", "`semfs mount` returns", "mount listable",
              "first search answered", "reconcile scan", "unmount", "reconcile found"]  # fmt: skip
    rows = []
    for run in runs:
        m = run["mount"]
        rows.append([
            size_name(run["size"]), run["embedder_short"], ms(m["mount_s"]), ms(m["listable_s"]),
            ms(m["first_search_s"]), ms(m["reconcile_s"]), ms(m["unmount_s"]),
            m["reconcile_summary"],
        ])  # fmt: skip
    return table(header, "rlrrrrrl", rows)


def targets(runs: list[dict[str, Any]], peers: dict[str, list[dict[str, Any]]],
            search_k: int) -> list[str]:  # fmt: skip
    rows = []
    for run in runs:
        goal = TARGET_P50_MS.get(run["size"])
        if goal is not None:
            p50 = run["summary"]["new_p50"] * 1000
            rows.append([f"new-query p50 <= {goal:.0f} ms at {size_name(run['size'])} "
                         f"({run['embedder_short']})", f"{p50:.1f} ms",
                         "yes" if p50 <= goal else "**no**"])  # fmt: skip
    for label, results in peers.items():
        chosen = [r for r in results if r["method"] == "annoy"
                  and r["setting"].endswith(f"search_k {search_k:,}")]  # fmt: skip
        for r in chosen:
            rows.append([f"Annoy recall@10 >= {TARGET_RECALL} ({label}, search_k "
                         f"{search_k:,})", f"{r['recall']:.3f}",
                         "yes" if r["recall"] >= TARGET_RECALL else "**no**"])  # fmt: skip
    for run in runs:
        if run["size"] >= 1_000_000 and run["embedder_short"].startswith("L3"):
            r = run["mount"]["rss_mib"]
            worst = max(r["queries max VmRSS"], r["queries VmHWM"])
            rows.append([f"daemon RSS <= {TARGET_RSS_MIB:.0f} MiB at 1 M (L3)",
                         f"{worst:.0f} MiB peak, {r['idle RssAnon']:.0f} MiB anonymous",
                         "yes" if worst <= TARGET_RSS_MIB else "**no**"])  # fmt: skip
    return table(["Target", "Measured", "Met"], "lll", rows)


ISSUE_P50_MS = {100_000: 10.0, 1_000_000: 20.0}  # new-query ls p50 targets (issue 21)
ISSUE_RSS_MIB = 500.0  # daemon VmRSS at 1 M after 1,000 queries (default profile)


def issue_targets(targets: dict[str, dict[str, Any]]) -> list[str]:
    """Per size: the default index's recall@10, ls p50/p95 idle and busy (the targets),
    under stress (a worst case, not held to them), memory."""
    header = ["Images", "index", "recall@10 (>= .95)", "ls p50 / p95 idle", "ls p50 / p95 busy",
              "p95 <= 2x p50", "ls p50 / p95 stress (worst case)",
              "daemon memory after queries (anon + file)"]  # fmt: skip
    rows = []
    for size, t in sorted(targets.items(), key=lambda item: int(item[0])):
        goal = ISSUE_P50_MS.get(int(size))

        def latency(state: str, t: dict[str, Any] = t, goal: float | None = goal) -> str:
            if state not in t:
                return "-"
            p50, p95 = t[state]["ls_p50_ms"], t[state]["ls_p95_ms"]
            met = "" if goal is None or state == "stress" else (
                " (met)" if p50 <= goal else " (**missed**)")  # fmt: skip
            held = "" if t[state]["state_held"] else ", state not held"
            return f"{p50:.1f} / {p95:.1f} ms{met}{held}"

        spread = [t[s]["ls_p95_ms"] <= 2 * t[s]["ls_p50_ms"] for s in ("idle", "busy") if s in t]
        memory = t.get("memory_mib")
        recall = t.get("recall_at_10")
        rows.append([
            size_name(int(size))
            + (f" ({t['profile']})" if t.get("profile", "default") != "default" else "")
            + (" (int8 queries)" if t.get("query_encoder", "float") != "float" else ""),
            t.get("engine", "-"),
            f"{recall:.3f}{'' if recall >= 0.95 else ' (**missed**)'}" if recall is not None
            else "-",
            latency("idle"), latency("busy"),
            "yes" if spread and all(spread) else "**no**" if spread else "-", latency("stress"),
            f"{memory['VmRSS']:.0f} ({memory['RssAnon']:.0f} + {memory['RssFile']:.0f}) "
            f"MiB after {memory['after_queries']:,}" if memory else "-",
        ])  # fmt: skip
    return table(header, "rlrrrlrr", rows)


def plot(results: dict[str, Any], prefix: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    runs = results["runs"]
    # 1. latency of a new query, by part
    figure, axes = plt.subplots(figsize=(7, 4))
    labels = [f"{size_name(r['size'])}\n{r['embedder_short']}" for r in runs]
    parts = [("encoding", "encode_p50"), ("index + catalog", "lookup_p50"),
             ("FUSE and the rest", "fuse_p50")]  # fmt: skip
    bottom = [0.0] * len(runs)
    for name, key in parts:
        values = [max(0.0, r["summary"][key] * 1000) for r in runs]
        axes.bar(labels, values, bottom=bottom, label=name)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axes.plot(labels, [r["summary"]["new_p50"] * 1000 for r in runs], "k_", markersize=30,
              label="measured end to end (p50)")  # fmt: skip
    axes.set_ylabel("ms (p50)")
    axes.set_title("ls MOUNT/search/<new query>/: where the time goes")
    axes.legend(fontsize=8)
    written.append(_save(figure, prefix, "latency"))
    # 2. recall against time per query, per index and size (--peers only)
    peers = results["peers"]
    if peers:
        written.append(_plot_peers(plt, peers, prefix))
    # 3. memory
    figure, axes = plt.subplots(figsize=(7, 4))
    anon = [r["mount"]["rss_mib"]["idle RssAnon"] for r in runs]
    mapped = [r["mount"]["rss_mib"]["idle RssFile"] for r in runs]
    axes.bar(labels, anon, label="idle: anonymous (models, heap)")
    axes.bar(labels, mapped, bottom=anon, label="idle: file-backed (libraries, Annoy pages)")
    axes.plot(labels, [r["mount"]["rss_mib"]["queries VmHWM"] for r in runs], "k_",
              markersize=30, label="peak (VmHWM) after queries")  # fmt: skip
    axes.axhline(TARGET_RSS_MIB, color="grey", linestyle=":", label="target at 1 M (L3)")
    axes.set_ylabel("MiB")
    axes.set_title("daemon resident memory")
    axes.legend(fontsize=8)
    written.append(_save(figure, prefix, "memory"))
    return written


STATE_ORDER = ("idle", "busy", "stress")


def plot_states(results: dict[str, Any], prefix: Path) -> Path:
    """`ls search/<new q>/` of every query of the --states blocks, per size and state
    (each dot a query; the bar its state's p50), against the size's p50 target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    runs = results["states"]
    figure, axes_row = plt.subplots(1, len(runs), figsize=(4.5 * len(runs), 4), squeeze=False)
    for axes, run in zip(axes_row[0], runs, strict=True):
        states = [s for s in STATE_ORDER if any(b["state"] == s for b in run["blocks"])]
        for x, state in enumerate(states):
            times = sorted(t * 1000 for b in run["blocks"] if b["state"] == state
                           for t in b["new"])  # fmt: skip
            spread = [x + 0.3 * ((i % 7) / 6 - 0.5) for i in range(len(times))]
            axes.plot(spread, times, ".", alpha=0.5)
            median = times[len(times) // 2]
            axes.plot([x - 0.25, x + 0.25], [median, median], "k-", linewidth=2)
        goal = TARGET_P50_MS.get(run["size"])
        if goal:
            axes.axhline(goal, color="grey", linestyle=":", label=f"p50 target {goal:.0f} ms")
        axes.set_xticks(range(len(states)), states)
        axes.set_yscale("log")
        axes.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axes.yaxis.set_minor_formatter(matplotlib.ticker.ScalarFormatter())
        axes.set_ylabel("ms per new query")
        axes.set_title(f"{size_name(run['size'])} images", fontsize=9)
        axes.legend(fontsize=7)
    return _save(figure, prefix, "states")


def _plot_peers(plt: Any, peers: dict[str, list[dict[str, Any]]], prefix: Path) -> Path:
    figure, axes_row = plt.subplots(1, len(peers), figsize=(4.2 * len(peers), 4), squeeze=False)
    for axes, (label, entries) in zip(axes_row[0], peers.items(), strict=True):
        methods = sorted({(e["method"], e["setting"].split(",")[0]) for e in entries})
        for method, family in methods:
            points = [
                e
                for e in entries
                if e["method"] == method
                and e["setting"].split(",")[0] == family
                and not math.isnan(e["recall"])
            ]
            if points:
                axes.plot(
                    [e["p50_ms"] for e in points],
                    [e["recall"] for e in points],
                    "o-",
                    label=f"{method} {family}" if method == "faiss" else method,
                )
        axes.axhline(TARGET_RECALL, color="grey", linestyle=":")
        axes.set_xscale("log")
        axes.set_title(label, fontsize=9)
        axes.set_xlabel("ms per query (p50, one thread)")
        axes.set_ylabel("recall@10")
        axes.legend(fontsize=7)
    return _save(figure, prefix, "recall")


def _save(figure: Any, prefix: Path, name: str) -> Path:
    path = prefix.with_name(f"{prefix.name}-{name}.png")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    return path


def kept_findings(output: Path) -> str:
    if not output.exists():
        return f"{FINDINGS}\n\n(Written by hand after a run.)\n"
    text = output.read_text()
    at = text.find(FINDINGS)
    return text[at:] if at >= 0 else f"{FINDINGS}\n"
