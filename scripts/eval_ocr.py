"""Measure OCR and the cheap text test (issue 20, facet 2).

Two sets, both from packages:
- rendered: words drawn with Debian's DejaVu fonts (fonts-dejavu-core) over real photos
  without text (the negatives of scripts/facets_data/text.tsv), seeded, in styles a photo
  library holds: plain text in a colour that stands out, an outlined caption, a sign (dark
  letters on a light panel), and three hard ones: small letters, low contrast, rotated;
- real: photos of signs, cropped words and a printed page from opencv-doc, with the words
  a reader sees written down by hand before any OCR ran (text.tsv).

Word recall: the share of the true words (lower case, split at anything not a letter or
digit) found among the words read. Extra words: words read that are not true, per image
(the noise that would reach the caption). Also the cheap test's keep rate on images with
text and on images without, and the cost of everything per image, on 2 threads.

    nice .venv/bin/python scripts/eval_ocr.py --out docs/facets-detectors-ocr.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageStat

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from facets_data import load, text_labels  # noqa: E402

FONTS = Path("/usr/share/fonts/truetype/dejavu")
FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf")
PHRASES = (
    "INVOICE 2024", "Total due 342", "Welcome to the museum", "Happy birthday Anna",
    "NO PARKING", "Fresh bread daily", "Exit", "Platform 9", "Garden centre open",
    "Receipt number 80412", "Meeting agenda", "Beach closed today", "Summer sale",
    "Coffee and cake", "Library hours 9 to 5", "Danger high voltage", "Station road",
    "Wedding menu", "Lost cat reward", "City hall",
)  # fmt: skip
STYLES = ("plain", "caption", "sign", "small", "low contrast", "rotated")
EASY_STYLES = ("plain", "caption", "sign")

Reader = Callable[[Image.Image], str]


def tokens(text: str) -> list[str]:
    return [t for t in re.split(r"[^a-z0-9]+", text.lower()) if t]


def render(background: Image.Image, phrase: str, style: str, rng: random.Random) -> Image.Image:
    image = background.convert("RGB")
    image.thumbnail((1024, 1024))
    image = image.copy()
    size = {"small": 14, "sign": 44}.get(style, rng.choice((36, 48, 64)))
    font_file = str(FONTS / rng.choice(FONT_FILES))
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    while True:  # the whole phrase inside the photo, with room to turn
        font = ImageFont.truetype(font_file, size)
        left, top, right, bottom = draw.textbbox((0, 0), phrase, font=font)
        if right - left <= image.width * 0.8 or size <= 10:
            break
        size -= 4
    width, height = right - left, bottom - top
    x = rng.randint(10, max(10, image.width - width - 10))
    y = rng.randint(10, max(10, image.height - height - 10))
    region = image.crop((x, y, min(image.width, x + width), min(image.height, y + height)))
    brightness = ImageStat.Stat(region.convert("L")).mean[0] if region.size[0] else 128
    contrast = (255, 255, 255, 255) if brightness < 128 else (0, 0, 0, 255)
    if style == "caption":
        draw.text((x - left, y - top), phrase, font=font, fill="white", stroke_width=2,
                  stroke_fill="black")  # fmt: skip
    elif style == "sign":
        pad = height // 2
        draw.rectangle((x - pad, y - pad, x + width + pad, y + height + pad), fill=(235, 232, 220))
        draw.text((x - left, y - top), phrase, font=font, fill=(30, 30, 40))
    elif style == "low contrast":
        grey = round(brightness)
        shade = max(0, grey - 40) if grey >= 128 else min(255, grey + 40)
        draw.text((x - left, y - top), phrase, font=font, fill=(shade, shade, shade, 255))
    else:  # plain, small, rotated
        draw.text((x - left, y - top), phrase, font=font, fill=contrast)
    if style == "rotated":
        layer = layer.rotate(rng.choice((-20, 20)), center=(x + width / 2, y + height / 2))
    image.paste(layer, (0, 0), layer)
    return image


def rendered_set(seed: int = 20) -> list[tuple[str, Image.Image, list[str]]]:
    rng = random.Random(seed)
    backgrounds = [name for name, has_text, _words, _note in text_labels() if not has_text]
    items = []
    for index, style in enumerate(STYLES * 6):
        name = backgrounds[(index * 5) % len(backgrounds)]
        phrase = PHRASES[index % len(PHRASES)]
        image = render(load(name), phrase, style, rng)
        items.append((f"{style}: {phrase!r} on {name.rsplit('/', 1)[-1]}", image, tokens(phrase)))
    return items


def real_set() -> list[tuple[str, Image.Image, list[str]]]:
    return [
        (name.rsplit("/", 1)[-1], load(name), words.split())
        for name, has_text, words, _note in text_labels()
        if has_text and words
    ]


def pytesseract_reader(psm: int) -> Reader:
    import pytesseract

    def read(image: Image.Image) -> str:
        return str(pytesseract.image_to_string(image.convert("L"), config=f"--psm {psm}"))

    return read


def tesserocr_reader(psm: int) -> Reader:
    import tesserocr

    from semfs.ml.ocr import _tessdata

    api = tesserocr.PyTessBaseAPI(path=str(_tessdata()) + os.sep, lang="eng", psm=psm)

    def read(image: Image.Image) -> str:
        api.SetImage(image.convert("L"))
        return str(api.GetUTF8Text())

    return read


def semfs_reader() -> Reader:
    from semfs.ml.ocr import TextReader

    return TextReader().read


CANDIDATES: dict[str, Callable[[], Reader]] = {
    "pytesseract, sparse text (psm 11)": lambda: pytesseract_reader(11),
    "tesserocr, sparse text (psm 11)": lambda: tesserocr_reader(11),
    "tesserocr, auto page (psm 3)": lambda: tesserocr_reader(3),
    "semfs read_text (psm 11 + rows of letters, cleaned)": semfs_reader,
}


def cpu_seconds() -> float:
    """CPU time of this process and of the programs it ran (pytesseract's tesseract)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def measure(reader: Reader, items: list[tuple[str, Image.Image, list[str]]]) -> dict[str, Any]:
    found = total = extra = 0
    times, cpu_times, per_image = [], [], []
    for name, image, truth in items:
        start, start_cpu = time.perf_counter(), cpu_seconds()
        text = reader(image)
        times.append((time.perf_counter() - start) * 1000)
        cpu_times.append((cpu_seconds() - start_cpu) * 1000)
        read = set(tokens(text))
        hits = sum(1 for word in set(truth) if word in read)
        found += hits
        total += len(set(truth))
        extra += len(read - set(truth))
        per_image.append(
            {"image": name, "truth": sorted(set(truth)), "found": hits, "read": text.strip()}
        )
    return {
        "word_recall": round(found / total, 3) if total else None,
        "extra_words_per_image": round(extra / len(items), 1),
        "ms_mean": round(statistics.mean(times), 1),
        "ms_median": round(statistics.median(times), 1),
        "cpu_ms_mean": round(statistics.mean(cpu_times), 1),
        "per_image": per_image,
    }


def cheap_test(rendered: list[tuple[str, Image.Image, list[str]]]) -> dict[str, Any]:
    from semfs.ml.ocr import probably_has_text

    labelled = [(name, load(name), has_text) for name, has_text, _w, _n in text_labels()]
    labelled += [(name, image, True) for name, image, _truth in rendered]
    rows, times, cpu_times = [], [], []
    for name, image, has_text in labelled:
        start, start_cpu = time.perf_counter(), time.process_time()
        said = probably_has_text(image)
        times.append((time.perf_counter() - start) * 1000)
        cpu_times.append((time.process_time() - start_cpu) * 1000)
        rows.append((name, has_text, said))
    with_text = [r for r in rows if r[1]]
    without = [r for r in rows if not r[1]]
    easy = [r for r in with_text if r[0].split(":")[0] in EASY_STYLES]
    return {
        "kept_with_text": f"{sum(r[2] for r in with_text)}/{len(with_text)}",
        "kept_with_text_easy_styles": f"{sum(r[2] for r in easy)}/{len(easy)}",
        "rejected_without_text": f"{sum(not r[2] for r in without)}/{len(without)}",
        "ms_mean": round(statistics.mean(times), 1),
        "ms_median": round(statistics.median(times), 1),
        "cpu_ms_mean": round(statistics.mean(cpu_times), 1),
        "missed": [r[0] for r in with_text if not r[2]],
        "kept_without_text": [r[0] for r in without if r[2]],
    }


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        f"Measured {meta['date']}: {meta['rendered']} rendered images ({', '.join(STYLES)}), "
        f"{meta['real']} real ones with transcribed words; {meta['threads']} threads, load "
        f"average {meta['load']} on {meta['cpus']} CPUs.",
        "",
        "| reader | set | word recall | extra words/image | CPU ms/image | wall ms (mean) "
        "| wall ms (median) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in results["readers"]:
        for part in ("rendered", "rendered (plain, caption, sign)", "real"):
            r = row[part]
            lines.append(
                f"| {row['reader']} | {part} | {r['word_recall']} | {r['extra_words_per_image']} "
                f"| {r.get('cpu_ms_mean', '-')} | {r['ms_mean']} | {r['ms_median']} |"
            )
    lines += [
        "",
        "Word recall by style of the rendered text, and on each real image:",
        "",
        "| reader | " + " | ".join(STYLES) + " |",
        "| --- | " + " | ".join("---" for _ in STYLES) + " |",
    ]
    for row in results["readers"]:
        found = {style: [0, 0] for style in STYLES}
        for item in row["rendered"]["per_image"]:
            style = item["image"].split(":")[0]
            found[style][0] += item["found"]
            found[style][1] += len(item["truth"])
        cells = [f"{hit}/{total}" for hit, total in found.values()]
        lines.append(f"| {row['reader']} | " + " | ".join(cells) + " |")
    real_names = [item["image"] for item in results["readers"][0]["real"]["per_image"]]
    lines += [
        "",
        "| reader | " + " | ".join(real_names) + " |",
        "| --- | " + " | ".join("---" for _ in real_names) + " |",
    ]
    for row in results["readers"]:
        cells = []
        for item in row["real"]["per_image"]:
            cells.append(f"{item['found']}/{len(item['truth'])}")
        lines.append(f"| {row['reader']} | " + " | ".join(cells) + " |")
    test = results["cheap_test"]
    lines += [
        "",
        f"Cheap test (probably_has_text): kept {test['kept_with_text']} images with text "
        f"({test['kept_with_text_easy_styles']} of the plain, caption and sign renders), "
        f"rejected {test['rejected_without_text']} without; "
        f"{test.get('cpu_ms_mean', '-')} ms of CPU, "
        f"{test['ms_mean']} ms mean and {test['ms_median']} ms median wall time an image.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", nargs="*", default=list(CANDIDATES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--report", type=Path, help="only write the .md of this run's JSON")
    args = parser.parse_args()
    if args.report:
        args.report.with_suffix(".md").write_text(markdown(json.loads(args.report.read_text())))
        return
    os.environ.setdefault("OMP_THREAD_LIMIT", str(args.threads))  # Tesseract's OpenMP
    import cv2

    cv2.setNumThreads(args.threads)

    rendered = rendered_set()
    real = real_set()
    easy = [item for item in rendered if item[0].split(":")[0] in EASY_STYLES]
    readers = []
    for name in args.candidates:
        reader = CANDIDATES[name]()
        reader(rendered[0][1])  # warm up
        row = {
            "reader": name,
            "rendered": measure(reader, rendered),
            "rendered (plain, caption, sign)": measure(reader, easy),
            "real": measure(reader, real),
        }
        readers.append(row)
        keys = ("word_recall", "extra_words_per_image", "cpu_ms_mean")
        summary = {k: {kk: v[kk] for kk in keys} for k, v in row.items() if k != "reader"}
        print(name, summary, flush=True)
    test = cheap_test(rendered)
    print("cheap test", {k: v for k, v in test.items()}, flush=True)
    results = {
        "meta": {
            "date": subprocess.run(["date", "-u", "+%Y-%m-%d %H:%M UTC"], capture_output=True,
                                   text=True, check=True).stdout.strip(),
            "rendered": len(rendered), "real": len(real), "threads": args.threads,
            "load": round(os.getloadavg()[0], 1), "cpus": os.cpu_count(),
        },
        "readers": readers,
        "cheap_test": test,
    }  # fmt: skip
    table = markdown(results)
    print(table)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
        args.out.with_suffix(".md").write_text(table)


if __name__ == "__main__":
    main()
