"""Retrieval quality of semfs's captioner/embedder pairs on labelled real photos.

    .venv/bin/python scripts/eval_retrieval.py [--captioners classifier:efficientnet-lite0 ...]
        [--embedders sentence-transformers:all-MiniLM-L6-v2 onnx:paraphrase-MiniLM-L3-v2]
        [--output docs/evaluation-results.md]   # and its chart, evaluation-results.png

Data: Debian's tuxpaint-stamps-default (`apt-get install --no-install-recommends
tuxpaint-stamps-default`): about 430 photos outside cartoon/ and symbols/, each with a
sentence a person wrote in the .txt beside it (first line) and a category (its folder).
The RGBA cut-outs are put on white and saved as JPEG into a store, one folder per
category. Each captioner indexes the store once with `semfs index` (the real ingest
path); each further embedder re-embeds the stored captions (`semfs index --embedder`,
which never captions again).

Queries, never tuned to: every human sentence (relevant: that photo) and every category
name with at least 3 photos, e.g. "birds", "fruit" (relevant: the photos in it). The
ranking is exact (every stored vector, no relevance cut), so it measures the captions
and the embedding, not the index. Metrics: Recall@k (a relevant photo in the top k) and
mean average precision at k (AP@k normalised by min(k, relevant)), k = 1, 5, 10 and R
(the number of relevant photos).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from semfs.catalog import Catalog  # noqa: E402
from semfs.config import Settings  # noqa: E402
from semfs.ml.embedder import make_embedder  # noqa: E402

STAMPS = Path("/usr/share/tuxpaint/stamps")
SKIPPED = {"cartoon", "symbols"}
MIN_CATEGORY = 3
KS = (1, 5, 10)


@dataclass(frozen=True)
class Photo:
    path: str  # store-relative
    sentence: str
    category: str  # the folder's last part, as a query ("mammals", "roadsigns")


def build_store(store: Path) -> list[Photo]:
    photos = []
    for png in sorted(STAMPS.rglob("*.png")):
        relative = png.relative_to(STAMPS)
        if SKIPPED & set(relative.parts[:-1]):
            continue
        text = png.with_suffix(".txt")
        if not text.is_file():
            continue
        sentence = text.read_text(errors="replace").splitlines()[0].strip()
        folder = relative.parent
        target = store / folder / (png.stem + ".jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        image = Image.open(png).convert("RGBA")
        flat = Image.new("RGB", image.size, (255, 255, 255))
        flat.paste(image, mask=image.getchannel("A"))
        flat.save(target, quality=92)
        category = folder.name.replace("_", " ")
        photos.append(Photo(str(target.relative_to(store)), sentence, category))
    return photos


def semfs(*args: object) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "semfs", *map(str, args)], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - started


def stored_vectors(store: Path, embedder: str) -> tuple[list[str], np.ndarray]:
    catalog = Catalog.open(Settings.load(store).catalog_path)
    try:
        reader = catalog.open_reader()
        rows = reader.execute(
            "SELECT f.dir, f.name, v.vector FROM vectors v JOIN files f ON f.id = v.file_id "
            "WHERE v.embedder = ? ORDER BY f.id",
            (embedder,),
        ).fetchall()
        reader.close()
    finally:
        catalog.close()
    paths = [os.fsdecode(d + b"/" + n if d else n) for d, n, _ in rows]
    matrix = np.stack([np.frombuffer(v, dtype=np.float32) for _, _, v in rows])
    return paths, matrix


def average_precision(ranked_relevant: list[bool], relevant: int, k: int) -> float:
    hits, total = 0, 0.0
    for rank, is_relevant in enumerate(ranked_relevant[:k], start=1):
        if is_relevant:
            hits += 1
            total += hits / rank
    return total / min(k, relevant)


def evaluate(
    photos: list[Photo], paths: list[str], matrix: np.ndarray, embedder_spec: str
) -> dict[str, dict[str, float]]:
    embedder = make_embedder(embedder_spec)
    by_path = {path: i for i, path in enumerate(paths)}
    sentence_queries = [(p.sentence, {by_path[p.path]}) for p in photos if p.path in by_path]
    members: dict[str, set[int]] = {}
    for photo in photos:
        if photo.path in by_path:
            members.setdefault(photo.category, set()).add(by_path[photo.path])
    category_queries = [(c, ids) for c, ids in sorted(members.items()) if len(ids) >= MIN_CATEGORY]
    results = {}
    for kind, queries in (("sentences", sentence_queries), ("categories", category_queries)):
        vectors = embedder.embed([text for text, _ in queries])
        scores = vectors @ matrix.T
        metrics: dict[str, list[float]] = {}
        for (_, relevant), row in zip(queries, scores, strict=True):
            order = np.argsort(-row)
            flags = [int(i) in relevant for i in order]
            for k in KS:
                metrics.setdefault(f"R@{k}", []).append(float(any(flags[:k])))
                metrics.setdefault(f"mAP@{k}", []).append(
                    average_precision(flags, len(relevant), k)
                )
            metrics.setdefault("mAP@R", []).append(
                average_precision(flags, len(relevant), len(relevant))
            )
        results[kind] = {name: float(np.mean(values)) for name, values in metrics.items()}
        results[kind]["queries"] = len(queries)
    return results


def chart(rows: list[dict[str, object]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["R@1", "R@5", "R@10", "mAP@10", "mAP@R"]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for axis, kind in zip(axes, ("sentences", "categories"), strict=True):
        width = 0.8 / len(rows)
        for i, row in enumerate(rows):
            values = [row[kind][name] for name in names]  # type: ignore[index]
            axis.bar([x + i * width for x in range(len(names))], values, width,
                     label=f"{row['captioner']} + {row['embedder']}")  # fmt: skip
        axis.set_xticks([x + 0.4 - width / 2 for x in range(len(names))], names)
        axis.set_title(f"{kind} as queries")
        axis.set_ylim(0, 1)
    axes[0].legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--captioners", nargs="+", default=["classifier:efficientnet-lite0"])
    parser.add_argument(
        "--embedders",
        nargs="+",
        default=["sentence-transformers:all-MiniLM-L6-v2", "onnx:paraphrase-MiniLM-L3-v2"],
    )
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    if not STAMPS.is_dir():
        sys.exit(
            "install the data: apt-get install --no-install-recommends tuxpaint-stamps-default"
        )
    started = time.time()
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="semfs-eval-") as temporary:
        source = Path(temporary) / "photos"
        photos = build_store(source)
        for captioner in args.captioners:
            store = Path(temporary) / re.sub(r"\W", "_", captioner)
            subprocess.run(["cp", "-al", str(source), str(store)], check=True)  # hard links
            for number, embedder in enumerate(args.embedders):
                seconds = semfs("index", store, "--quiet", "--captioner", captioner,
                                "--embedder", embedder)  # fmt: skip
                paths, matrix = stored_vectors(store, make_embedder(embedder).name)
                row: dict[str, object] = {
                    "captioner": captioner,
                    "embedder": embedder,
                    "images": len(paths),
                    # The first run captions and embeds; later ones only re-embed.
                    "index_seconds": round(seconds, 1),
                    "captioned": number == 0,
                }
                row.update(evaluate(photos, paths, matrix, embedder))
                rows.append(row)
                print(json.dumps(row), flush=True)
    report(rows, photos, time.time() - started, args.output)


def report(
    rows: list[dict[str, object]], photos: list[Photo], seconds: float, output: Path | None
) -> None:
    lines = [
        "# Retrieval quality",
        "",
        "Measured by `scripts/eval_retrieval.py` (its docstring says how). Exact ranking "
        "over every stored vector, no relevance cut.",
        "",
        f"- Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; "
        f"{len(photos)} photos from tuxpaint-stamps-default; "
        f"{platform.python_version()}; total {seconds:.0f} s",
        "",
        "| Captioner | Embedder | Queries | R@1 | R@5 | R@10 | mAP@1 | mAP@5 | mAP@10 | mAP@R | "
        "Index time |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        for kind in ("sentences", "categories"):
            m = row[kind]
            assert isinstance(m, dict)
            what = "caption + embed" if row["captioned"] else "re-embed only"
            lines.append(
                f"| {row['captioner']} | {row['embedder']} | {kind} ({m['queries']:.0f}) | "
                + " | ".join(f"{m[name]:.2f}" for name in
                             ("R@1", "R@5", "R@10", "mAP@1", "mAP@5", "mAP@10", "mAP@R"))
                + f" | {row['index_seconds']} s ({what}) |"
            )  # fmt: skip
    lines.append("")
    text = "\n".join(lines)
    print(text)
    if output is not None:
        chart(rows, output.with_suffix(".png"))
        output.write_text(text + f"\n![chart]({output.with_suffix('.png').name})\n")


if __name__ == "__main__":
    main()
