"""Text in an image: Tesseract OCR, and a cheap test of whether it is worth running.

Tesseract comes through tesserocr, whose wheel carries libtesseract itself (no compiler,
no -dev packages) and calls it in process; the English model comes from Debian's
`tesseract-ocr-eng` (its tessdata directory is found below, or set TESSDATA_PREFIX).
Chosen over pytesseract, which starts the `tesseract` program and writes temporary files
for every image, by measurement (scripts/eval_ocr.py, docs/facets-detectors.md).

OCR costs hundreds of milliseconds an image, so `probably_has_text` first looks for rows
of letter-like blobs (MSER regions of similar height side by side) in a small grey copy;
only images it keeps are worth `read_text`. `read_text` returns the words a reader would
search for: tokens Tesseract is unsure of, and tokens that are neither a dictionary word
(WordNet's lemmas and their inflections, function words) nor a confident long word nor a
number, are dropped; it is bounded in size (large images scaled down, small ones up) and
in time (Tesseract's own timeout).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from semfs.errors import ModelError
from semfs.ml.lazy import Lazy

OCR_MAX_SIDE = 2048  # larger images are scaled down to this many pixels on the longer side
OCR_MIN_SIDE = 800  # smaller ones are scaled up: Tesseract wants letters 20+ pixels high
OCR_TIMEOUT_S = 10.0  # Tesseract gives up on an image after this long (a dense page:
# 1-2 s of CPU; more on a busy machine)
MAX_WORDS = 200  # words kept from one image
MIN_CONFIDENCE = 50  # Tesseract's word confidence (0-100) below which a word is noise
CONFIDENT = 85  # a word not in the dictionary is kept from this confidence on
SHORT_CONFIDENT = 70  # a three-letter dictionary word (not a function word) from this one
TEST_SIDE = 512  # the cheap test's grey copy, longer side in pixels
LINES_SIDE = 1024  # where read_text looks for rows of letters to read alone
MAX_LINES = 12  # rows of letters read alone, largest first
MIN_ROW_LETTERS = 3  # letter-like regions in a row that make a line of text
MIN_ROWS = 2  # such lines in an image that make it worth reading (one: too often texture)
LETTER_CONTRAST = 30  # grey levels between a letter and the rest of its box, at least
SAME_INK = 40  # grey levels between the letters of one row, at most
PAGE_SINGLE_LINE = 7  # Tesseract's page segmentation mode for one line of text
TESSDATA_DIRS = (
    Path("/usr/share/tesseract-ocr/5/tessdata"),
    Path("/usr/share/tesseract-ocr/4.00/tessdata"),
    Path("/usr/share/tessdata"),
)
WORDNET_DIR = Path("/usr/share/wordnet")
LANGUAGE = "eng"

Gray = np.ndarray[Any, np.dtype[np.uint8]]

# Closed-class words WordNet does not list (it has nouns, verbs, adjectives, adverbs).
_FUNCTION_WORDS_TEXT = """
    a an the and or but nor if of at by for from in into on onto to with without within
    over under up down out off about above below after before between through during
    against among as than then so no not yes all any each every some few more most other
    such own same too very can will just do does did done is are was were be been being
    have has had having i me my mine we us our ours you your yours he him his she her hers
    it its they them their theirs this that these those who whom whose which what where
    when why how here there again once only also both either neither per via shall should
    would could may might must ought
"""
FUNCTION_WORDS = frozenset(_FUNCTION_WORDS_TEXT.split())


@dataclass(frozen=True)
class Word:
    text: str
    confidence: float  # Tesseract's, 0-100


def _tessdata() -> Path:
    prefix = os.environ.get("TESSDATA_PREFIX")
    candidates = [Path(prefix), Path(prefix) / "tessdata"] if prefix else []
    for directory in (*candidates, *TESSDATA_DIRS):
        if (directory / f"{LANGUAGE}.traineddata").is_file():
            return directory
    raise ModelError(
        f"Tesseract's {LANGUAGE} model is not installed: "
        "apt-get install tesseract-ocr tesseract-ocr-eng (or set TESSDATA_PREFIX)"
    )


class Dictionary:
    """English words for telling words from OCR noise: WordNet's lemmas, read once."""

    def __init__(self, directory: Path = WORDNET_DIR) -> None:
        words: set[str] = set(FUNCTION_WORDS)
        for part in ("noun", "verb", "adj", "adv"):
            path = directory / f"index.{part}"
            try:
                lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError as error:
                raise ModelError(
                    f"WordNet is not installed ({path}: {error.strerror}): "
                    "apt-get install wordnet-base"
                ) from error
            for line in lines:
                if line and not line.startswith(" "):
                    lemma = line.split(" ", 1)[0]
                    if "_" not in lemma:
                        words.add(lemma)
            exceptions = directory / f"{part}.exc"  # irregular forms: "children child"
            if exceptions.is_file():
                for line in exceptions.read_text(encoding="utf-8", errors="replace").split("\n"):
                    if line:
                        words.add(line.split(" ", 1)[0])
        self._words = frozenset(words)

    def __contains__(self, word: object) -> bool:
        if not isinstance(word, str):
            return False
        return any(form in self._words for form in _base_forms(word))


def _base_forms(word: str) -> Iterator[str]:
    """The word and what regular English inflection may have made it from."""
    yield word
    for suffix, replacements in (
        ("ies", ("y",)),
        ("es", ("", "e")),
        ("s", ("",)),
        ("ied", ("y",)),
        ("ed", ("", "e")),
        ("ing", ("", "e")),
        ("er", ("", "e")),
        ("est", ("", "e")),
        ("ly", ("",)),
        ("'s", ("",)),
    ):
        if word.endswith(suffix) and len(word) > len(suffix) + 1:
            stem = word[: -len(suffix)]
            for replacement in replacements:
                yield stem + replacement
            if suffix in {"ed", "ing", "er", "est"} and len(stem) > 2 and stem[-1] == stem[-2]:
                yield stem[:-1]  # "stopped" -> "stop"


_NUMBER = re.compile(r"^\d[\d.,:/-]*\d$|^\d$")
_WORD = re.compile(r"^[a-z]+(?:['-][a-z]+)*$")
_EDGE_PUNCTUATION = "\"'`.,;:!?()[]{}<>*|_~«»“”‘’-–—"  # noqa: RUF001


def clean_words(words: Iterable[Word], dictionary: Dictionary) -> list[str]:
    """The words worth searching for, lower case, in reading order, each once."""
    kept: list[str] = []
    seen: set[str] = set()
    for word in words:
        if word.confidence < MIN_CONFIDENCE:
            continue
        token = word.text.strip(_EDGE_PUNCTUATION)
        if not token:
            continue
        lower = token.lower()
        if _NUMBER.match(token):
            keep = len(token) >= 2
        elif _WORD.match(lower):
            keep = _plausible(token, lower, word.confidence, dictionary)
        else:
            keep = False
        if keep and lower not in seen:
            seen.add(lower)
            kept.append(lower)
            if len(kept) >= MAX_WORDS:
                break
    return kept


def _plausible(token: str, lower: str, confidence: float, dictionary: Dictionary) -> bool:
    letters = lower.replace("'", "").replace("-", "")
    if len(letters) == 1:
        return lower in {"a", "i"}
    if len(letters) == 2:  # WordNet lists two-letter abbreviations that texture reads as
        return lower in FUNCTION_WORDS
    if len(letters) == 3 and lower not in FUNCTION_WORDS:
        return confidence >= SHORT_CONFIDENT and lower in dictionary
    casing_ok = token.islower() or token.isupper() or token.istitle()
    if not casing_ok:  # "gRmM": noise, not a word
        return False
    if lower in dictionary or all(part in dictionary for part in re.split(r"['-]", lower)):
        return True
    pronounceable = bool(re.search(r"[aeiouy]", letters)) and not re.search(r"(.)\1\1", letters)
    return len(letters) >= 4 and confidence >= CONFIDENT and pronounceable


def _prepared(image: Image.Image) -> Image.Image:
    """Grey (L), flattened over white if transparent, scaled into Tesseract's range."""
    image = _plain(image)
    if image.mode in {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}:
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) * (255.0 / (high - low)) if high > low else values * 0
        image = Image.fromarray(scaled.astype(np.uint8))
    elif "A" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.new("RGBA", rgba.size, "white")
        image.alpha_composite(rgba)
    gray = image.convert("L")
    longer = max(gray.size)
    if longer > OCR_MAX_SIDE:
        gray = gray.copy()
        gray.thumbnail((OCR_MAX_SIDE, OCR_MAX_SIDE), Image.Resampling.LANCZOS, reducing_gap=3.0)
    elif 0 < longer < OCR_MIN_SIDE:
        factor = min(4.0, OCR_MIN_SIDE / longer)
        size = (max(1, round(gray.width * factor)), max(1, round(gray.height * factor)))
        gray = gray.resize(size, Image.Resampling.BICUBIC)
    return gray


class TextReader:
    """Tesseract (through tesserocr) for any thread: one engine per thread, made lazily."""

    def __init__(self, timeout_s: float = OCR_TIMEOUT_S, page_mode: int = 11) -> None:
        self.timeout_s = timeout_s
        self.page_mode = page_mode  # 11: sparse text, anywhere in a photo; 3: a page
        self._tessdata = _tessdata()
        self._local = threading.local()
        self._dictionary = Lazy(Dictionary)
        self._api()  # load and check now, in the caller's thread

    def _api(self) -> Any:
        api = getattr(self._local, "api", None)
        if api is None:
            try:
                import tesserocr  # type: ignore[import-untyped]
            except ImportError as error:
                raise ModelError("OCR needs tesserocr: pip install tesserocr") from error
            try:
                api = tesserocr.PyTessBaseAPI(
                    path=str(self._tessdata) + os.sep,
                    lang=LANGUAGE,
                    psm=self.page_mode,
                    oem=tesserocr.OEM.LSTM_ONLY,
                )
            except RuntimeError as error:
                raise ModelError(
                    f"Tesseract failed to start ({self._tessdata}): {error}"
                ) from error
            self._local.api = api
        return api

    def dictionary(self) -> Dictionary:
        return self._dictionary.get()

    def words(self, image: Image.Image) -> list[Word]:
        """Every word Tesseract reads, with its confidence: the whole image as sparse text,
        then each row of letters the text test finds, alone (a crop without the busy
        photo around it reads far better), within the timeout for the image."""
        if min(image.size) < 8:
            return []
        prepared = _prepared(image)
        deadline = time.monotonic() + self.timeout_s
        found = self._recognize(prepared, self.page_mode, deadline)
        scale = max(prepared.size) / min(max(prepared.size), LINES_SIDE)
        small = _test_gray(prepared, LINES_SIDE)
        lines = _text_lines(small) if small is not None else []
        lines.sort(key=lambda box: (box[3] - box[1]) * (box[2] - box[0]), reverse=True)
        for left, top, right, bottom in lines[:MAX_LINES]:
            pad = (bottom - top) * 0.4
            box = (
                max(0, round((left - pad) * scale)),
                max(0, round((top - pad) * scale)),
                min(prepared.width, round((right + pad) * scale)),
                min(prepared.height, round((bottom + pad) * scale)),
            )
            if box[2] - box[0] < 8 or box[3] - box[1] < 4:
                continue
            crop = prepared.crop(box)
            if crop.height < 32:  # Tesseract reads letters 20-40 pixels high best
                factor = 32 / crop.height
                crop = crop.resize((round(crop.width * factor), 32), Image.Resampling.BICUBIC)
            found += self._recognize(crop, PAGE_SINGLE_LINE, deadline)
        return found

    def _recognize(self, image: Image.Image, page_mode: int, deadline: float) -> list[Word]:
        left_ms = int((deadline - time.monotonic()) * 1000)
        if left_ms <= 0:
            return []
        api = self._api()
        api.SetPageSegMode(page_mode)
        api.SetImage(image)
        try:
            if not api.Recognize(timeout=left_ms):
                return []  # timed out (or failed): no words rather than half of them
            if not api.GetUTF8Text().strip():
                return []  # (asking an empty page for its words prints an error)
            return [Word(text, float(conf)) for text, conf in api.MapWordConfidences()]
        finally:
            api.Clear()

    def read(self, image: Image.Image) -> str:
        """The image's searchable words, lower case, separated by spaces ("" for none)."""
        return " ".join(clean_words(self.words(image), self.dictionary()))


_shared = Lazy(TextReader)


def read_text(image: Image.Image) -> str:
    """The words in `image` worth searching for, by a reader made once per process."""
    return _shared.get().read(image)


def probably_has_text(image: Image.Image) -> bool:
    """Whether `image` seems to hold a line of text: cheap (milliseconds), errs towards yes.

    Letters are stable regions (MSER) that stand out from their box, of one height and
    one ink, side by side on a line: three or more make a line, and two lines make an
    image worth reading. Textures of many similar blobs (gravel, leaves, fur) also make
    rows; they cost an OCR that finds nothing. A single short word is often missed.
    """
    gray = _test_gray(image)
    if gray is None:
        return False
    return len(_text_lines(gray)) >= MIN_ROWS


def _test_gray(image: Image.Image, side: int = TEST_SIDE) -> Gray | None:
    if min(image.size) < 8:
        return None
    small = image
    if max(image.size) > side:
        small = image.copy()
        small.thumbnail((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.ascontiguousarray(np.asarray(_prepared_for_test(small), dtype=np.uint8))


def _plain(image: Image.Image) -> Image.Image:
    """Premultiplied alpha modes (La, RGBa) as their plain twins: Pillow converts them
    to nothing else."""
    plain = {"La": "LA", "RGBa": "RGBA"}.get(image.mode)
    return image.convert(plain) if plain else image


def _prepared_for_test(image: Image.Image) -> Image.Image:
    image = _plain(image)
    if image.mode in {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"} or (
        "A" in image.getbands() or "transparency" in image.info
    ):
        return _flat(image)
    return image.convert("L")


def _flat(image: Image.Image) -> Image.Image:
    if image.mode in {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}:
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) * (255.0 / (high - low)) if high > low else values * 0
        return Image.fromarray(scaled.astype(np.uint8))
    rgba = image.convert("RGBA")
    flat = Image.new("RGBA", rgba.size, "white")
    flat.alpha_composite(rgba)
    return flat.convert("L")


def _text_lines(gray: Gray) -> list[tuple[int, int, int, int]]:
    """Rows of letter-like regions in the grey image: (left, top, right, bottom)."""
    return _rows(_letters(gray))


def _letters(gray: Gray) -> list[tuple[int, int, int, int, int]]:
    """Stable regions (MSER) shaped like letters, that stand out from the box around
    them: (x, y, width, height, ink), left to right; ink is the region's mean grey."""
    import cv2

    create = cv2.MSER_create  # type: ignore[attr-defined]
    mser = create(delta=5, min_area=12, max_area=max(60, gray.size // 50))
    regions, boxes = mser.detectRegions(gray)
    letters = []
    seen: set[tuple[int, int, int, int]] = set()
    for points, (x, y, w, h) in zip(regions, boxes, strict=True):
        if not (6 <= h <= gray.shape[0] // 3 and 0.1 <= w / h <= 1.5):
            continue
        key = (int(x) // 3, int(y) // 3, int(w) // 3, int(h) // 3)
        if key in seen:  # MSER finds a letter at several thresholds: one box per place
            continue
        fill = len(points) / float(w * h)
        if not 0.15 <= fill <= 0.9:
            continue
        box = gray[y : y + h, x : x + w]
        ink = float(gray[points[:, 1], points[:, 0]].mean())
        paper = (float(box.sum()) - ink * len(points)) / max(1, box.size - len(points))
        if abs(ink - paper) < LETTER_CONTRAST:
            continue
        seen.add(key)
        letters.append((int(x), int(y), int(w), int(h), round(ink)))
    letters.sort()
    return letters


def _rows(
    letters: list[tuple[int, int, int, int, int]], min_letters: int = MIN_ROW_LETTERS
) -> list[tuple[int, int, int, int]]:
    """Runs of `min_letters` or more letters of one height and one ink, side by side on
    one line: (left, top, right, bottom)."""
    lines = []
    used = [False] * len(letters)
    for i, (x, y, w, h, ink) in enumerate(letters):
        if used[i]:
            continue
        chain, right, cy = 1, x + w, y + h / 2
        top, bottom = y, y + h
        for j in range(i + 1, len(letters)):
            x2, y2, w2, h2, ink2 = letters[j]
            if x2 > right + 1.2 * h:
                break
            if used[j] or x2 < right - 0.3 * h or abs(ink2 - ink) > SAME_INK:
                continue
            if abs((y2 + h2 / 2) - cy) < 0.35 * h and 0.6 <= h2 / h <= 1.6:
                used[j] = True
                chain += 1
                right = max(right, x2 + w2)
                top, bottom = min(top, y2), max(bottom, y2 + h2)
        if chain >= min_letters:
            lines.append((x, top, right, bottom))
    return lines
