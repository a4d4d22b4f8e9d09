"""Dominant colours of an image, named from a small fixed palette of everyday words.

Computed on the image ingest already decoded for the models (at most 384 px a side),
shrunk again to 48 px: about 1 ms. Each pixel is named by hue, saturation and
brightness (HSV); the names that cover enough of the image are its colours, most first.
No model: the rules below are what people call these colours, checked against hand
labels (docs/facets.md).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# The palette: basic colour terms every language with that many has (Berlin and Kay).
PALETTE = (
    "black", "white", "grey", "red", "orange", "yellow", "green", "blue", "purple", "pink",
    "brown",
)  # fmt: skip
SIDE = 48  # pixels on the longer side that are counted
MIN_SHARE = 0.15  # of the pixels: a colour that covers less is not "dominant"
MAX_COLOURS = 3

# Hue boundaries in degrees, walked in order: a hue below the bound gets the name.
_HUES = ((12.0, "red"), (38.0, "orange"), (68.0, "yellow"), (165.0, "green"),
         (255.0, "blue"), (285.0, "purple"), (340.0, "pink"), (361.0, "red"))  # fmt: skip
_INDEX = {name: i for i, name in enumerate(PALETTE)}


def pixel_names(image: Image.Image) -> np.ndarray:
    """Each counted pixel's palette index (a flat array)."""
    small = image.convert("RGB")
    small.thumbnail((SIDE, SIDE))
    hsv = np.asarray(small.convert("HSV"), dtype=np.float32).reshape(-1, 3) / 255.0
    hue, sat, val = hsv[:, 0] * 360.0, hsv[:, 1], hsv[:, 2]
    names = np.full(hue.shape, _INDEX["grey"], dtype=np.int8)
    bounds = np.array([bound for bound, _ in _HUES])
    names_of_hue = np.array([_INDEX[name] for _, name in _HUES], dtype=np.int8)
    chromatic = names_of_hue[np.searchsorted(bounds, hue, side="right").clip(0, len(bounds) - 1)]
    coloured = (sat >= 0.25) & (val >= 0.22)
    names[coloured] = chromatic[coloured]
    # Dark or greyish orange and yellow are what people call brown (wood, soil, leather);
    # pale red is pink.
    warm = coloured & (hue >= 12.0) & (hue < 68.0)
    names[warm & ((val < 0.55) | ((sat < 0.45) & (val < 0.8)))] = _INDEX["brown"]
    reddish = coloured & ((hue < 12.0) | (hue >= 340.0))
    names[reddish & (val < 0.45)] = _INDEX["brown"]
    names[reddish & (sat < 0.45) & (val >= 0.75)] = _INDEX["pink"]
    grey = ~coloured
    names[grey & (val < 0.22)] = _INDEX["black"]
    names[grey & (val >= 0.22) & (val > 0.82)] = _INDEX["white"]
    return names


def dominant_colours(image: Image.Image) -> list[str]:
    """The palette names that cover at least MIN_SHARE of the image, most first (at
    most MAX_COLOURS); an image with none that large gets its largest one."""
    names = pixel_names(image)
    if names.size == 0:
        return []
    shares = np.bincount(names.astype(np.int64), minlength=len(PALETTE)) / names.size
    order = np.argsort(-shares, kind="stable")
    chosen = [PALETTE[i] for i in order[:MAX_COLOURS] if shares[i] >= MIN_SHARE]
    return chosen or [PALETTE[int(order[0])]]
