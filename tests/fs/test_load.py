"""Load through one mount: 1,000 images copied in by four processes at once, while
another lists a search over and over and another renames and deletes files. Nothing
deadlocks, no update is lost, and the catalog and the index end consistent."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from pathlib import Path

from PIL import Image

from tests.conftest import SAMPLE_DIR
from tests.fs.conftest import Mount, semfs, wait_for
from tests.fs.test_catalog_mount import assert_catalog_matches_store
from tests.fs.test_search import INGEST_TIMEOUT, catalog_rows, unranked

IMAGES = 1_000
COPIERS = 4
MUTABLE = 100  # copied before the load; renamed (and a third deleted) during it
DEADLINE = 300.0  # seconds for the whole load: past it, something is stuck


def make_images(directory: Path, count: int, prefix: str) -> None:
    directory.mkdir(parents=True)
    sources = [Image.open(SAMPLE_DIR / name).convert("RGB")
               for name in ("astronaut.png", "chelsea.png", "coffee.png")]  # fmt: skip
    for i in range(count):
        source = sources[i % len(sources)]
        x, y = (7 * i) % (source.width - 96), (11 * i) % (source.height - 96)
        source.crop((x, y, x + 96, y + 96)).save(directory / f"{prefix}{i:04d}.jpg")


def copy_all(sources: list[Path], destination: Path) -> None:
    for source in sources:
        shutil.copy(source, destination / source.name)


def list_until(search: Path, stop: Path, counted: Path) -> None:
    listings = 0
    while not stop.exists():
        os.listdir(search)
        listings += 1
    counted.write_text(str(listings))


def rename_and_delete(mnt: Path, names: list[str], done: Path) -> None:
    for i, name in enumerate(names):
        if i % 3 == 0:
            os.unlink(mnt / "mutable" / name)
        else:
            os.rename(mnt / "mutable" / name, mnt / "mutable" / f"moved-{name}")
    done.write_text(json.dumps(len(names)))


def test_parallel_copies_searches_renames_and_deletes(mounted: Mount, tmp_path: Path) -> None:
    mnt = mounted.mountpoint
    make_images(tmp_path / "camera", IMAGES, "photo")
    make_images(tmp_path / "mutable", MUTABLE, "m")
    shutil.copytree(tmp_path / "mutable", mnt / "mutable")
    (mnt / "incoming").mkdir()
    os.mkdir(mnt / "search" / "a photo of a cat")

    sources = sorted((tmp_path / "camera").iterdir())
    context = multiprocessing.get_context("spawn")
    stop, counted, mutated = tmp_path / "stop", tmp_path / "listings", tmp_path / "mutated"
    workers = [
        context.Process(target=copy_all, args=(sources[i::COPIERS], mnt / "incoming"))
        for i in range(COPIERS)
    ]
    mutable = sorted(os.listdir(tmp_path / "mutable"))
    workers.append(context.Process(target=rename_and_delete, args=(mnt, mutable, mutated)))
    lister = context.Process(target=list_until, args=(mnt / "search" / "a photo of a cat",
                                                      stop, counted))  # fmt: skip
    started = time.monotonic()
    lister.start()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=DEADLINE)
    stop.touch()
    lister.join(timeout=60)
    elapsed = time.monotonic() - started
    assert [w.exitcode for w in [*workers, lister]] == [0] * (len(workers) + 1), elapsed
    assert int(counted.read_text()) > 0

    kept = [name for i, name in enumerate(sorted(os.listdir(tmp_path / "mutable"))) if i % 3]
    total = 3 + IMAGES + len(kept)
    wait_for(lambda: (mounted.status()["files"], mounted.status()["queued"]) == (total, 0),
             timeout=INGEST_TIMEOUT * 2, what=f"{total} images ingested")  # fmt: skip

    # No lost update: every copy is whole, every rename and delete took effect.
    for source in sources:
        assert (mnt / "incoming" / source.name).read_bytes() == source.read_bytes()
    assert sorted(os.listdir(mnt / "mutable")) == sorted(f"moved-{name}" for name in kept)
    status = mounted.status()
    assert (status["indexed"], status["failed"]) == (total, 0), status["failures"]
    assert_catalog_matches_store(mounted.store)
    vectors = [row[0] for row in catalog_rows(mounted.store, "SELECT file_id FROM vectors")]
    assert len(vectors) == len(set(vectors)) == total  # each image indexed exactly once
    listed = unranked(os.listdir(mnt / "search" / "a photo of a cat"))
    assert listed and len(listed) == len(set(listed))  # each image once, ranked in order
    mounted.unmount()
    assert semfs("check", mounted.store).stdout.rstrip().endswith("consistent")
