"""`semfs index --engine ray` on a local Ray cluster of two worker processes: the same
catalog and index as the single-process path, bad images failed with their reasons."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from semfs.catalog.database import join_path

pytest.importorskip("ray", reason="the ray extra: pip install 'semfs-images[ray]'")


def semfs(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "semfs", *map(str, args)],
                            capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert result.returncode == 0 or not check, result.stderr
    return result


def described(store: Path) -> dict[str, tuple[str, str, np.ndarray]]:
    db = sqlite3.connect(store / ".semfs" / "catalog.sqlite3")
    try:
        rows = db.execute(
            "SELECT f.dir, f.name, d.caption, d.keywords, v.vector FROM files f "
            "JOIN descriptions d ON d.file_id = f.id JOIN vectors v ON v.file_id = f.id"
        ).fetchall()
    finally:
        db.close()
    return {
        join_path(directory, name).decode(): (
            caption,
            keywords,
            np.frombuffer(vector, dtype=np.float32),
        )
        for directory, name, caption, keywords, vector in rows
    }


def image_vectors(store: Path) -> dict[str, np.ndarray]:
    db = sqlite3.connect(store / ".semfs" / "catalog.sqlite3")
    try:
        rows = db.execute(
            "SELECT f.dir, f.name, v.vector FROM files f JOIN image_vectors v ON v.file_id = f.id"
        ).fetchall()
    finally:
        db.close()
    return {join_path(d, n).decode(): np.frombuffer(v, dtype=np.float32) for d, n, v in rows}


def test_ray_ingest_writes_what_the_local_path_writes(store: Path, tmp_path: Path) -> None:
    (store / "fake.jpg").write_text("not a photo\n")
    on_ray = tmp_path / "on-ray"
    shutil.copytree(store, on_ray)

    local = semfs("index", store, "--quiet")
    ray = semfs("index", on_ray, "--engine", "ray", "--ray-workers", "2")
    assert ray.stdout.startswith("indexed 3, failed 1, still queued 0")
    assert ray.stdout == local.stdout  # the same summary, failure reasons included
    # Only our progress bar on the terminal; what Ray says goes to its log.
    assert "indexing (ray)" in ray.stderr
    ray_says = re.compile(r"\b(INFO|WARNING|ERROR)\b|Token authentication|core_worker")
    assert not ray_says.search(ray.stdout + ray.stderr), ray.stderr
    ray_log = (on_ray / ".semfs" / "ray.log").read_text()
    assert re.search(r"\bINFO\b", ray_log) and "Started a local Ray instance" in ray_log
    # --debug leaves it on the terminal (the queue is empty: Ray starts, and stops).
    debug = semfs("index", on_ray, "--engine", "ray", "--ray-workers", "1", "--debug", "--quiet")
    assert "Started a local Ray instance" in debug.stderr

    expected, found = described(store), described(on_ray)
    assert sorted(found) == sorted(expected) and len(found) == 3
    for path, (caption, keywords, vector) in expected.items():
        assert found[path][:2] == (caption, keywords), path
        assert float(found[path][2] @ vector) > 0.9999, path  # the same model, same text
    hits = semfs("search", on_ray, "a cat", "--json").stdout
    assert '"path": "animals/cat.png"' in hits
    assert semfs("check", on_ray).stdout.rstrip().endswith("consistent")
    # Image features too, on either path: search by example finds the cat first.
    for indexed in (store, on_ray):
        status = json.loads(semfs("status", indexed, "--json").stdout)
        assert (status["image_features"], status["image_features_queued"]) == (3, 0)
        by_example = semfs("search", indexed, "--image", str(store / "animals" / "cat.png"),
                           "--json").stdout  # fmt: skip
        assert json.loads(by_example)[0]["path"] == "animals/cat.png"
    # Modifiers after --image, as at the end of a similar/ name.
    cat = str(store / "animals" / "cat.png")
    no_cut = json.loads(semfs("search", store, "--image", cat, "@t=2 @sort=name", "--json").stdout)
    assert [hit["path"] for hit in no_cut] == sorted(hit["path"] for hit in no_cut)
    assert len(no_cut) == 3
    refused = semfs("search", store, "cats", "--image", cat, check=False)
    assert refused.returncode != 0 and "an example takes only" in refused.stderr
    local_features, ray_features = image_vectors(store), image_vectors(on_ray)
    assert sorted(ray_features) == sorted(local_features)
    for path, features in local_features.items():
        assert float(ray_features[path] @ features) > 0.9999, path
