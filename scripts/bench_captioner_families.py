"""Cost per image of each Hugging Face captioner family semfs drives, measured on the
tiny random models of tests/unit/test_captioner_families.py (hidden size 32, one layer):
parameters, FLOPs of one caption (counted by torch's FlopCounterMode, the image's
encoding and every generated token) and the time of one caption on the real sample
photos. The tiny models' numbers check the mechanics and the shape of the cost (how
many tokens an image becomes, whether the prompt is read); the README scales them to
the real models' sizes on paper. Run: .venv/bin/python scripts/bench_captioner_families.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from semfs.ml.captioner import make_captioner
from semfs.ml.transformers_captioner import TransformersCaptioner
from tests.conftest import SAMPLE_DIR
from tests.unit.test_captioner_families import FAMILIES

PHOTOS = ("chelsea.png", "coffee.png", "rocket.jpg")
REPEATS = 3


def main() -> None:
    images = [Image.open(SAMPLE_DIR / name).convert("RGB") for name in PHOTOS]
    print("| family | parameters | MFLOPs per image | ms per image | tokens out |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as work:
        for family, build in FAMILIES.items():
            directory = Path(work) / family
            torch.manual_seed(19)  # the tests' weights
            build(directory)
            captioner = make_captioner(f"transformers:{directory}")
            assert isinstance(captioner, TransformersCaptioner)
            parameters = sum(p.numel() for p in captioner._model.parameters())
            captioner.caption(images[:1])  # warm
            with FlopCounterMode(display=False) as counter:
                captions = captioner.caption(images[:1])
            start = time.perf_counter()
            for _ in range(REPEATS):
                captions = [captioner.caption([image])[0] for image in images]
            per_image = (time.perf_counter() - start) / REPEATS / len(images)
            tokens = len(captioner._tokenizer(captions[0])["input_ids"])
            print(
                f"| {family} | {parameters:,} | {counter.get_total_flops() / 1e6:.1f} "
                f"| {per_image * 1000:.0f} | {tokens} |"
            )


if __name__ == "__main__":
    main()
