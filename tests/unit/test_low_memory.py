"""The low-memory profile: what it sets, that flags still win, and its int8 embedder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from semfs.config import Settings
from semfs.errors import QuietError
from semfs.ml.calibration import default_cut
from semfs.ml.embedder import make_embedder


def test_the_profile_sets_defaults_and_explicit_settings_win(tmp_path: Path) -> None:
    low = Settings.load(tmp_path, profile="low-memory")
    assert low.embedder == "onnx:paraphrase-MiniLM-L3-v2-int8"
    assert (low.ingest_workers, low.ingest_batch, low.query_cache) == (1, 2, 64)
    assert low.release_captioner_after > 0
    assert Settings.load(tmp_path, profile="low-memory", ingest_workers=3).ingest_workers == 3
    (tmp_path / ".semfs").mkdir()
    (tmp_path / ".semfs" / "config.toml").write_text('profile = "low-memory"\ntop_k = 7\n')
    from_file = Settings.load(tmp_path)
    assert (from_file.embedder, from_file.top_k) == (low.embedder, 7)
    with pytest.raises(QuietError, match="unknown profile 'tiny'"):
        Settings.load(tmp_path, profile="tiny")


def test_int8_embedder_is_close_to_the_float_one_and_has_its_own_name_and_cut() -> None:
    texts = ["a photo of an espresso, or a cup", "snow on mountains", "a tabby cat asleep"]
    small = make_embedder("onnx:paraphrase-MiniLM-L3-v2-int8")
    full = make_embedder("onnx:paraphrase-MiniLM-L3-v2")
    assert small.name != full.name  # its vectors are its own: switching re-embeds
    a, b = small.embed(texts), full.embed(texts)
    assert a.shape == b.shape == (3, 384)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-4)
    cosines = (a * b).sum(axis=1)
    assert cosines.min() > 0.95, cosines
    # The meaning survives: each text is nearest its own float vector.
    assert list((a @ b.T).argmax(axis=1)) == [0, 1, 2]
    assert default_cut("classifier", small.name) == 1.05  # calibrated (docs/low-memory.md)
