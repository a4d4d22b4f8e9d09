"""The Markdown page and plots of scripts/bench_index_sweep.py, generated from its JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchlib.tables import table

TARGET = 0.95
KIND_TITLE = {
    "synthetic": "synthetic caption-like",
    "real": "real classifier captions, replicated",
    "sentences": "sentence captions (paraphrased tuxpaint)",
}
ENGINE_ORDER = (
    "exact f32",
    "exact f16",
    "exact int8",
    "exact int8 + re-rank",
    "exact (distinct)",
    "annoy",
    "annoy (distinct)",
    "faiss IVFFlat (mmap)",
    "faiss IVF-SQ8 (mmap)",
    "faiss IVF-SQ8 + re-rank (mmap)",
    "hnswlib",
)
IVF = ("faiss IVFFlat (mmap)", "faiss IVF-SQ8 (mmap)", "faiss IVF-SQ8 + re-rank (mmap)")


def size_label(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000} M"
    return f"{n / 1000:g} k"


def mib(value: int | None) -> str:
    if not value:
        return "-"
    return f"{value / 2**20:,.0f} MiB" if value >= 2**20 else f"{value / 2**10:,.0f} KiB"


def ms(value: float) -> str:
    return f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} s"


def cheapest(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per engine, the fastest (p50) setting whose tuning-half recall reaches the target."""
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["recall_tune"] >= TARGET and (
            row["engine"] not in best or row["p50_ms"] < best[row["engine"]]["p50_ms"]
        ):
            best[row["engine"]] = row
    return best


def engines(rows: list[dict[str, Any]]) -> list[str]:
    present = {row["engine"] for row in rows}
    return [e for e in ENGINE_ORDER if e in present] + sorted(present - set(ENGINE_ORDER))


def recall_cell(value: float) -> str:
    text = f"{value:.3f}"
    return text if value >= TARGET else f"**{text}**"


def summary_table(results: list[dict[str, Any]]) -> list[str]:
    header = ["Size", "Vectors", "Engine", "Cheapest setting reaching .95 (tuning half)",
              "recall tuning / held-out", "p50 / p95", "vs exact f32 p50", "build",
              "resident (anon)", "mapped file"]  # fmt: skip
    cells = []
    for result in results:
        rows = result["rows"]
        exact = next(r for r in rows if r["engine"] == "exact f32")["p50_ms"]
        best = cheapest(rows)
        for engine in engines(rows):
            label = [size_label(result["size"]), result["kind"], engine]
            row = best.get(engine)
            if row is None:
                top = max(
                    (r for r in rows if r["engine"] == engine),
                    key=lambda r: (r["recall_tune"], -r["p50_ms"]),
                )
                cells.append([
                    *label, f"none (best: {top['setting']})",
                    f"{top['recall_tune']:.3f} / {top['recall_held']:.3f}",
                    f"{ms(top['p50_ms'])} / {ms(top['p95_ms'])}", f"{exact / top['p50_ms']:.1f}x",
                    seconds(top["build_s"]), mib(top["resident_bytes"]), mib(top["mapped_bytes"]),
                ])  # fmt: skip
                continue
            cells.append([
                *label, row["setting"],
                f"{row['recall_tune']:.3f} / {recall_cell(row['recall_held'])}",
                f"{ms(row['p50_ms'])} / {ms(row['p95_ms'])}", f"{exact / row['p50_ms']:.1f}x",
                seconds(row["build_s"]), mib(row["resident_bytes"]), mib(row["mapped_bytes"]),
            ])  # fmt: skip
    return table(header, "rlllrrrrrr", cells)


def one_setting(results: list[dict[str, Any]]) -> list[str]:
    """Per size and engine: the cheapest single setting that reaches the target on BOTH
    query halves for EVERY kind of vectors measured at that size (a default has to serve
    any collection), with its worst recall and worst p50 over the kinds."""
    header = ["Size", "Engine", "Setting for every kind", "worst recall (either half)",
              "worst p50", "worst p50 vs exact f32", "build (max)", "resident (anon, max)",
              "mapped file (max)"]  # fmt: skip
    cells = []
    for size in sorted({r["size"] for r in results}):
        at = [r for r in results if r["size"] == size]
        exact = {r["kind"]: next(x for x in r["rows"] if x["engine"] == "exact f32") for r in at}
        all_rows = [dict(row, kind=r["kind"]) for r in at for row in r["rows"]]
        for engine in engines(all_rows):
            by_setting: dict[str, list[dict[str, Any]]] = {}
            for row in all_rows:
                if row["engine"] == engine:
                    by_setting.setdefault(row["setting"], []).append(row)
            kinds = {row["kind"] for rows in by_setting.values() for row in rows}
            options = []
            for setting, rows in by_setting.items():
                worst = min(min(r["recall_tune"], r["recall_held"]) for r in rows)
                slow = max(r["p50_ms"] for r in rows)
                ratio = min(exact[r["kind"]]["p50_ms"] / r["p50_ms"] for r in rows)
                options.append(
                    (worst >= TARGET and len(rows) == len(kinds), slow, worst, ratio, setting, rows)
                )
            ok = [o for o in options if o[0]]
            kinds_note = "" if len(kinds) == len(at) else f" ({', '.join(sorted(kinds))} only)"
            if not ok:
                best = max(options, key=lambda o: (o[2], -o[1]))
                cells.append([
                    size_label(size), f"{engine}{kinds_note}", f"none (best: {best[4]})",
                    f"{best[2]:.3f}", ms(best[1]), f"{best[3]:.1f}x", "-", "-", "-",
                ])  # fmt: skip
                continue
            _, slow, worst, ratio, setting, rows = min(ok, key=lambda o: o[1])
            build = max((r["build_s"] or 0.0) for r in rows)
            resident = max((r["resident_bytes"] or 0) for r in rows)
            mapped = max((r["mapped_bytes"] or 0) for r in rows)
            cells.append([
                size_label(size), f"{engine}{kinds_note}", setting, f"{worst:.3f}", ms(slow),
                f"{ratio:.1f}x", seconds(build) if build else "-", mib(resident), mib(mapped),
            ])  # fmt: skip
    return table(header, "rllrrrrrr", cells)


def full_table(result: dict[str, Any]) -> list[str]:
    rows = result["rows"]
    exact = next(r for r in rows if r["engine"] == "exact f32")["p50_ms"]
    best = {id(r) for r in cheapest(rows).values()}
    header = ["Engine", "Setting", "recall tuning", "recall held-out", "p50", "p95",
              "vs exact f32 p50", "build", "resident (anon)", "mapped / disk", "Note"]  # fmt: skip
    cells = []
    for engine in engines(rows):
        for row in (r for r in rows if r["engine"] == engine):
            mark = " ✔" if id(row) in best else ""
            disk = row["disk_bytes"] or row["mapped_bytes"]
            cells.append([
                f"{engine}{mark}", row["setting"], f"{row['recall_tune']:.3f}",
                f"{row['recall_held']:.3f}", ms(row["p50_ms"]), ms(row["p95_ms"]),
                f"{exact / row['p50_ms']:.1f}x", seconds(row["build_s"]),
                mib(row["resident_bytes"]), mib(disk), row["note"],
            ])  # fmt: skip
    return table(header, "llrrrrrrrrl", cells)


def rss_table(results: list[dict[str, Any]]) -> list[str]:
    header = ["Size", "Vectors", "Variant", "nprobe", "queries", "ms/query",
              "VmRSS before load", "after load", "after queries: VmRSS", "RssAnon",
              "RssFile"]  # fmt: skip
    cells = []
    for result in results:
        for item in result.get("rss", []):
            after = item["after_queries"]
            cells.append([
                size_label(result["size"]), result["kind"], item["engine"], item["nprobe"],
                f"{item['queries']:,}", f"{item['ms_per_query']:.2f}",
                mib(item["before_load"]["VmRSS"]), mib(item["after_load"]["VmRSS"]),
                mib(after["VmRSS"]), mib(after["RssAnon"]), mib(after["RssFile"]),
            ])  # fmt: skip
    return table(header, "rllrrrrrrrr", cells)


def ivf_table(results: list[dict[str, Any]]) -> list[str]:
    header = ["Size", "Vectors", "nlist", "trained on", "train", "assign all",
              "add + write IVFFlat", "SQ8 ranges", "add + write SQ8"]  # fmt: skip
    cells = []
    for result in results:
        t = result.get("ivf") or {}
        if t:
            cells.append([
                size_label(result["size"]), result["kind"], f"{t['nlist']:,}",
                f"{t['train_points']:,}", seconds(t["train_s"]), seconds(t["assign_s"]),
                seconds(t["add_write_flat_s"]), seconds(t["train_sq_s"]),
                seconds(t["add_write_sq_s"]),
            ])  # fmt: skip
    return table(header, "rlrrrrrrr", cells)


def plot(results: list[dict[str, Any]], size: int, path: Path) -> bool:
    """Recall (held-out) against p50 latency, one panel per kind, one line per engine (and
    per tree count for Annoy), its points in sweep order; the same colour and marker for a
    line in every panel."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    at = [r for r in results if r["size"] == size]
    figure, axes = plt.subplots(1, len(at), figsize=(5.2 * len(at) + 2.6, 4.6), squeeze=False)
    markers = "os^vD<>pPXh*d8H"
    colours = plt.get_cmap("tab20").colors
    styles: dict[str, tuple[Any, str]] = {}
    handles: dict[str, Any] = {}

    def line(ax: Any, label: str, rows: list[dict[str, Any]]) -> None:
        if label not in styles:
            styles[label] = (colours[len(styles) % 20], markers[len(styles) % len(markers)])
        colour, marker = styles[label]
        (handle,) = ax.plot([r["p50_ms"] for r in rows], [r["recall_held"] for r in rows],
                            marker=marker, color=colour, label=label, alpha=0.85, markersize=5,
                            linestyle="-" if len(rows) > 1 else "none")  # fmt: skip
        handles.setdefault(label, handle)

    for ax, result in zip(axes[0], at, strict=True):
        rows = result["rows"]
        for engine in engines(rows):
            mine = [r for r in rows if r["engine"] == engine]
            if engine.startswith("annoy"):  # one line per tree count
                for trees in sorted({r["params"]["trees"] for r in mine}):
                    part = [r for r in mine if r["params"]["trees"] == trees]
                    line(ax, f"{engine} {trees} trees", part)
                continue
            line(ax, engine, mine)
        ax.axhline(TARGET, color="grey", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel("p50 latency per query, ms (log)")
        ax.set_ylabel("recall@10, held-out queries")
        title = KIND_TITLE.get(result["kind"], result["kind"])
        ax.set_title(f"{size_label(size)}: {title}", fontsize=10)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    figure.legend(list(handles.values()), list(handles), fontsize=7, loc="center right")
    figure.tight_layout(rect=(0, 0, 1 - 2.4 / (5.2 * len(at) + 2.6), 1))
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return True


def write(data: dict[str, Any], output: Path) -> None:
    results = sorted(
        data["results"],
        key=lambda r: (
            r["size"],
            list(KIND_TITLE).index(r["kind"]) if r["kind"] in KIND_TITLE else 9,
        ),
    )
    runs = data["runs"]
    lines = ["# Index sweep: which search index, at which size", ""]
    lines += [
        "Generated by `scripts/bench_index_sweep.py` (its docstring says what each figure is)"
        " from its JSON; nothing here is edited by hand except the Findings file it includes.",
        "Issue 21, items 1-2: every candidate engine and setting on the same vectors, per size"
        " and kind, in one run per size.",
        "",
    ]
    for i, run in enumerate(runs):
        m = run["machine"]
        sizes = sorted({r["size"] for r in results if r.get("run") == i})
        if not sizes:
            continue
        lines.append(
            f"- Run {i + 1} ({', '.join(size_label(s) for s in sizes)}): {run['started']} to "
            f"{run.get('finished', '?')} UTC, {seconds(run.get('seconds'))}; commit {m['commit']};"
            f" {m['cpus']} CPUs shared with other jobs (run at nice 5), {m['platform']}, Python"
            f" {m['python']}, faiss {run['faiss']}; load average at the start"
            f" {' '.join(f'{x:.2f}' for x in m['load_average'])}, at the end"
            f" {' '.join(f'{x:.2f}' for x in run.get('load_at_end', []))};"
            f" arguments `{' '.join(run['argv'])}`"
        )
        for name, value in run.get("timings", {}).items():
            lines.append(f"  - {name}: {value:.1f} s")
    info = data.get("vectors", {})
    queries = data.get("queries", {})
    lines += [
        f"- Embedder: `{runs[-1]['embedder']}` for vectors and queries. Queries:"
        f" {queries.get('count')} natural phrases never seen (e.g. "
        f"{', '.join(repr(q) for q in queries.get('examples', [])[:4])}), alternate ones in the"
        f" tuning half ({queries.get('tuning')}) and the held-out half ({queries.get('held_out')})."
        " Settings are chosen on the tuning half; the held-out recall is shown beside it"
        " (**bold** when it falls below .95).",
        "- Recall@10 against an exact float32 scan; a returned image as near as the exact 10th"
        " (1e-5) counts as a hit (many images share a vector). Latency: one query at a time,"
        " one thread, first query untimed. Resident = heap the engine keeps; mapped = the file"
        " it reads through a memory map (file-backed pages, which the kernel can drop).",
        "",
        "## Vectors",
        "",
    ]
    if "synthetic" in info:
        lines.append(
            f"- **synthetic**: `benchlib.vectors.realistic`, {info['synthetic']['pool captions']:,}"
            " ImageNet-label captions embedded, each image a caption (Zipf popularity) plus"
            " isotropic noise (cosine .85-.98 to it); every vector distinct."
        )
    if "real" in info:
        r = info["real"]
        lines.append(
            f"- **real**: `{r['captioner']}` (semfs's default captioner) captioned the"
            f" {r['images']} images of the evaluation sets ({', '.join(r['datasets'])}) in"
            f" {r['captioning_s']} s: {r['distinct captions']} distinct captions,"
            f" {r['captions used once']} of them used once, the most common on"
            f" {r['images under the top caption']} images ('{r['most common'][0][0]}'). Each"
            " image of the collection takes a distinct caption with probability proportional to"
            " its frequency there, and its exact vector: identical captions give identical"
            " vectors, so the collection has only that many distinct vectors, each shared by"
            " n / that many images."
        )
    if "sentences" in info:
        s = info["sentences"]
        lines.append(
            f"- **sentences**: tuxpaint's {s['source sentences']} human-written sentences,"
            f" paraphrased by rule (`benchlib.vectors.paraphrase`: synonyms, determiners, an"
            " inserted adjective, a prepositional phrase moved to the front, 'a photo of ...'"
            f" prefixes and suffixes, case and period) into {s['embedded distinct paraphrases']:,}"
            " distinct sentences, all embedded (e.g. "
            f"{'; '.join(repr(x) for x in s['examples'][:4])}). Up to that size a collection"
            " samples them without repeats; above it, every embedded paraphrase appears once and"
            " each further image is a mix of two embedded paraphrases of the same sentence"
            " (weight uniform in [0, 1]) plus Gaussian noise of relative size 0.05,"
            " renormalised (`benchlib.vectors.sentence_rows`), the sentence drawn with Zipf"
            " popularity (exponent 1.1)."
        )
    lines.append(
        "- Annoy and the exact scan over distinct vectors only (images grouped under each,"
        " ties in any order) run where vectors repeat, on the real captions: in the other"
        " kinds every vector is distinct, so they are plain Annoy and the exact scan."
    )
    lines += ["", "## Cheapest setting of each engine reaching recall@10 ≥ .95", ""]
    lines += [
        "✔ in the full tables marks the same rows. *none* gives the engine's best recall"
        " in the sweep.",
        "",
    ]
    lines += summary_table(results)
    lines += ["", "## One setting for every kind of vectors: the default per size", ""]
    lines += [
        "A default has to serve any collection: per size and engine, the cheapest single"
        " setting that reaches .95 on both query halves for every kind measured at that size"
        " (for IVF: nlist = 4 √n, so the smallest such nprobe), with its worst recall and"
        " latency over the kinds. *none* gives the engine's best worst-case recall.",
        "",
    ]
    lines += one_setting(results)
    rss = rss_table(results)
    if len(rss) > 2:
        lines += ["", "## IVF memory-mapped: process memory after many different queries", ""]
        lines += [
            "A fresh Python process (numpy and faiss imported) loads the index with"
            " `faiss.read_index(path, faiss.IO_FLAG_MMAP)`, answers the queries one by"
            " one, and reads /proc/self/status. The re-rank variant reads the float32"
            " rows of its top 50 from the vectors file, memory-mapped (np.load"
            " mmap_mode='r').",
            "",
        ]
        lines += rss
    lines += ["", "## IVF builds", ""]
    lines += ivf_table(results)
    skipped = [f"{size_label(r['size'])} {r['kind']}: {s}" for r in results for s in r["skipped"]]
    if skipped:
        lines += ["", "Skipped for time: " + "; ".join(dict.fromkeys(skipped)) + "."]
    hnsw_sizes = {r["size"] for r in results if any(x["engine"] == "hnswlib" for x in r["rows"])}
    missing = sorted({r["size"] for r in results} - hnsw_sizes)
    if missing:
        lines.append(
            f"hnswlib not built at {', '.join(size_label(s) for s in missing)}: its"
            " build (all in memory) does not fit the run's time budget on this machine."
        )
    notes = output.with_name(output.stem + "-findings.md")
    if notes.is_file():
        lines += ["", notes.read_text().rstrip()]
    for size in sorted({r["size"] for r in results}):
        lines += ["", f"## {size_label(size)}: every setting", ""]
        image = output.with_name(f"{output.stem}-{size_label(size).replace(' ', '')}.png")
        if plot(results, size, image):
            lines += [f"![recall against latency at {size_label(size)}]({image.name})", ""]
        for result in (r for r in results if r["size"] == size):
            lines += [
                f"### {size_label(size)} {KIND_TITLE.get(result['kind'], result['kind'])}"
                f" ({result['distinct_vectors']:,} distinct vectors; measured in"
                f" {seconds(result['seconds'])}, finished {result['finished']})",
                "",
            ]
            lines += full_table(result)
            lines.append("")
    output.write_text("\n".join(lines).rstrip() + "\n")
