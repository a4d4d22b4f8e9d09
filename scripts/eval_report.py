"""The results page of scripts/eval_retrieval.py: metric tables, Annoy against exact,
costs, the relevance-cut calibration, and a chart."""

from __future__ import annotations

import datetime
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import eval_measures as measures
import numpy as np

NAMES = ("R@1", "R@5", "R@10", "mAP@1", "mAP@5", "mAP@10", "mAP@R")
CALIBRATE_ON = ("sentences", "categories")  # tuxpaint; with "photos" beside
PLATEAU = 0.02


def short(spec: str) -> str:
    for long, brief in (("classifier:efficientnet-", ""), ("sentence-transformers:", ""),
                        ("onnx:paraphrase-", "onnx "), ("all-", "")):  # fmt: skip
        spec = spec.replace(long, brief)
    return spec


def metric_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| Captioner | Embedder | Queries | " + " | ".join(NAMES)
             + " | ms / image: caption, embed (in run) |",
             "|---|---|---|" + "--:|" * (len(NAMES) + 1)]  # fmt: skip
    for row in rows:
        for kind in ("sentences", "categories", "photos"):
            if kind not in row:
                continue
            m = row[kind]
            lines.append(
                f"| {row['captioner']} | {row['embedder']} | {kind} ({m['queries']:.0f}) | "
                + " | ".join(f"{m[name]:.2f}" for name in NAMES)
                + f" | {row['caption_ms']:.0f}, {row['embed_ms']:.1f} |"
            )
    return lines


def annoy_lines(rows: list[dict[str, Any]], sweep: dict[str, Any]) -> list[str]:
    lines = ["| Captioner | Embedder | Queries | Annoy recall@10 vs exact | R@10 exact / Annoy "
             "| mAP@R exact / Annoy |", "|---|---|---|--:|--:|--:|"]  # fmt: skip
    for row in rows:
        for kind in ("sentences", "categories", "photos"):
            if kind in row:
                exact, annoy = row[kind], row[f"{kind} (Annoy)"]
                lines.append(
                    f"| {short(row['captioner'])} | {short(row['embedder'])} | {kind} | "
                    f"{annoy['recall@10']:.3f} | {exact['R@10']:.2f} / {annoy['R@10']:.2f} | "
                    f"{exact['mAP@R']:.2f} / {annoy['mAP@R']:.2f} |"
                )
    for dataset, points in sweep.items():
        lines += ["", f"Sweep on {dataset} (first captioner, first embedder; search_k -1 is "
                  "Annoy's default, trees x 10):", "",
                  "| trees | search_k | recall@10 | build + all queries |",
                  "|--:|--:|--:|--:|"]  # fmt: skip
        lines += [f"| {p['trees']} | {p['search_k']} | {p['recall@10']:.3f} | "
                  f"{p['build_and_query_s']:.2f} s |" for p in points]  # fmt: skip
    return lines


def cost_lines(costs: dict[str, dict[str, float]]) -> list[str]:
    lines = ["| Model | Load | ms / image | ms / caption | ms / query | Peak RSS |",
             "|---|--:|--:|--:|--:|--:|"]  # fmt: skip
    for spec, c in costs.items():
        cells = [f"{c[key]:.1f}" if key in c else "" for key in
                 ("ms_per_image", "ms_per_caption", "ms_per_query")]  # fmt: skip
        lines.append(f"| {spec} | {c['load_s']:.1f} s | " + " | ".join(cells)
                     + f" | {c['peak_rss_mb']:.0f} MB |")  # fmt: skip
    return lines


def pooled_table(
    row: dict[str, Any], kinds: Sequence[str], cuts: Sequence[float], top_k: int
) -> list[dict[str, float]]:
    """The cut table over the queries of `kinds` together (same images)."""
    present = [k for k in kinds if k in row["distances"]]
    distances = np.vstack([row["distances"][k][0] for k in present])
    relevants = [r for k in present for r in row["distances"][k][1]]
    return measures.cut_table(distances, relevants, cuts, top_k)


def calibrate(
    merged: dict[str, Any], cuts: Sequence[float], top_k: int
) -> tuple[float, float, float, list[dict[str, float]], list[dict[str, float]]]:
    """The loosest cut whose listings' mean F1 (every query weighs the same), summed over
    the two datasets (tuxpaint's sentences and categories together; the photos), is
    within PLATEAU of the best; and the cuts each dataset alone would pick."""
    tux = pooled_table(merged, CALIBRATE_ON, cuts, top_k)
    has_photos = "photos" in merged["distances"]
    photos = measures.cut_table(*merged["distances"]["photos"], cuts, top_k) if has_photos else tux
    scores = [t["f1"] + p["f1"] for t, p in zip(tux, photos, strict=True)]
    # The loosest cut on the plateau: an empty listing costs a user more than an extra
    # image, and the sum is flat over a range of cuts.
    best = max(i for i, score in enumerate(scores) if score >= (1 - PLATEAU) * max(scores))
    both = (tux[best], photos[best])
    alone = [max(table, key=lambda e: e["f1"])["cut"] for table in (tux, photos)]
    return both[0]["cut"], alone[0], alone[1], tux, photos


def calibration_lines(rows: list[dict[str, Any]], cuts: Sequence[float], top_k: int,
                      detailed: Sequence[str]) -> list[str]:  # fmt: skip
    lines = ["| Captioner | Embedder | Cut (mean F1 plateau, both sets) | tuxpaint alone | photos "
             "alone | tuxpaint at the cut: kept / found / irrelevant listed / F1 | photos at "
             "the cut: kept / found / irrelevant listed / F1 / no-match empty |",
             "|---|---|--:|--:|--:|--:|--:|"]  # fmt: skip
    tables: list[str] = []
    by_pair: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        merged = by_pair.setdefault((row["captioner"], row["embedder"]), {"distances": {}})
        merged["distances"].update(row["distances"])
    for (captioner, embedder), merged in by_pair.items():
        if not any(k in merged["distances"] for k in CALIBRATE_ON):
            continue
        cut, tux_cut, photos_cut, tux, photos = calibrate(merged, cuts, top_k)
        t = next(e for e in tux if e["cut"] == cut)
        p = next(e for e in photos if e["cut"] == cut)
        lines.append(f"| {short(captioner)} | {short(embedder)} | {cut:.3f} | {tux_cut:.3f} | "
                     f"{photos_cut:.3f} | {t['kept']:.2f} / {t['found']:.2f} / "
                     f"{t['irrelevant_listed']:.1f} / {t['f1']:.3f} | {p['kept']:.2f} / "
                     f"{p['found']:.2f} / {p['irrelevant_listed']:.1f} / {p['f1']:.3f} / "
                     f"{p['no_match_empty']:.2f} |")  # fmt: skip
        if captioner in detailed:
            tables += full_table(captioner, embedder, tux, merged, cuts, top_k)
    return lines + tables


def full_table(captioner: str, embedder: str, table: list[dict[str, float]],
               merged: dict[str, Any], cuts: Sequence[float], top_k: int) -> list[str]:  # fmt: skip
    photos = (measures.cut_table(*merged["distances"]["photos"], cuts, top_k)
              if "photos" in merged["distances"] else [{}] * len(table))  # fmt: skip
    lines = ["", f"Every cut, {short(captioner)} + {short(embedder)} (tuxpaint | photos):", "",
             "| cut | kept | dropped | irrelevant listed | found | F1 | photos kept | photos "
             "irrelevant listed | photos found | photos F1 | photos no-match empty |",
             "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]  # fmt: skip
    for t, p in zip(table, photos, strict=True):
        tail = (f"{p['kept']:.2f} | {p['irrelevant_listed']:.1f} | {p['found']:.2f} | "
                f"{p['f1']:.3f} | {p['no_match_empty']:.2f}" if p else " | | | | ")  # fmt: skip
        lines.append(f"| {t['cut']:.3f} | {t['kept']:.2f} | {t['dropped']:.3f} | "
                     f"{t['irrelevant_listed']:.1f} | {t['found']:.2f} | {t['f1']:.3f} | "
                     f"{tail} |")  # fmt: skip
    return lines


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in ("sentences", "categories", "photos") if any(k in r for r in rows)]
    shown = ("R@1", "R@10", "mAP@R")
    figure, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 0.32 * len(rows) + 2),
                                sharey=True, squeeze=False)  # fmt: skip
    labels = sorted({f"{short(r['captioner'])} + {short(r['embedder'])}" for r in rows})
    for axis, kind in zip(axes[0], kinds, strict=True):
        values = {f"{short(r['captioner'])} + {short(r['embedder'])}": r[kind]
                  for r in rows if kind in r}  # fmt: skip
        height = 0.8 / len(shown)
        for j, name in enumerate(shown):
            axis.barh([i + j * height for i in range(len(labels))],
                      [values[label][name] if label in values else 0 for label in labels],
                      height, label=name)  # fmt: skip
        axis.set_yticks([i + 0.4 - height / 2 for i in range(len(labels))], labels, fontsize=7)
        axis.set_xlim(0, 1)
        axis.set_title(f"{kind} as queries")
    axes[0][0].legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def report(rows: list[dict[str, Any]], extra: dict[str, Any], seconds: float,
           output: Path | None, cuts: Sequence[float], top_k: int,
           detailed: Sequence[str] = ()) -> str:  # fmt: skip
    sizes = ", ".join(f"{name}: {n} photos" for name, n in extra["datasets"].items())
    lines = ["# Retrieval quality", "",
             "Measured by `scripts/eval` (scripts/eval_retrieval.py; its docstring says how). "
             "Exact ranking over every stored vector, no relevance cut, unless marked Annoy.", "",
             f"- Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; {sizes}; "
             f"Python {platform.python_version()}; total {seconds:.0f} s on a shared 2-core "
             "machine (timings are noisy)", "", "## Metrics", "", *metric_lines(rows), "",
             "## Annoy (25 trees, search_k as in Settings) against exact search", "",
             *annoy_lines(rows, extra["sweep"]), ""]  # fmt: skip
    if extra["costs"]:
        lines += ["## Cost (each model alone in a child process)", "",
                  *cost_lines(extra["costs"]), ""]  # fmt: skip
    lines += ["## Relevance cut (angular distance; top_k "
              f"{top_k})", "", *calibration_lines(rows, cuts, top_k, detailed), ""]  # fmt: skip
    text = "\n".join(lines)
    print(text)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        png = output.with_suffix(".png")
        try:
            chart(rows, png)
        except ImportError:  # matplotlib is in the eval extra only
            output.write_text(text)
        else:
            output.write_text(text + f"\n![chart]({png.name})\n")
    return text
