"""Many `kill -9`s of the daemon at random moments of a busy mount; after each, a
remount must lose nothing and `semfs check` must find catalog, store and index agreeing.

    .venv/bin/python scripts/crash_campaign.py [--rounds 30] [--seed 1] [--json FILE]

Each round mounts the same store (it grows from round to round), runs a mixed workload
through the mount (copies of new photos, renames of files and of folders, deletions, a
new saved search), kills the daemon after a random 0.2-4 s, then remounts, waits for
ingest to drain, unmounts and runs `semfs check`.

Lost means: a file whose copy had returned (written and closed) before the kill is
missing or differs afterwards, or a file the workload removed comes back, or a saved
search is gone. Needs root and /dev/fuse; everything lives in a temporary directory.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image

SKIMAGE = Path(str(importlib.resources.files("skimage") / "data"))
PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"]
DRAIN_TIMEOUT = 300.0


@dataclass
class Round:
    number: int
    killed_after_s: float
    operations: int  # workload operations completed before the kill
    files: int  # images in the store after recovery
    lost: list[str] = field(default_factory=list)
    check_exit: int = -1
    recover_s: float = 0.0  # remount until ingest drained


def semfs(*args: object, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "semfs", *map(str, args)],
                          capture_output=True, text=True, check=check, timeout=600)  # fmt: skip


def photo(rng: random.Random, path: Path) -> None:
    source = Image.open(SKIMAGE / rng.choice(PHOTOS)).convert("RGB")
    x, y = rng.randrange(0, source.width - 120), rng.randrange(0, source.height - 120)
    size = rng.randrange(100, 120)
    source.crop((x, y, x + size, y + size)).save(path, quality=rng.randrange(70, 95))


class Workload:
    """Copies, renames and deletes through the mount until the daemon dies; remembers
    what the mount acknowledged (`expected`: path -> bytes; `removed`)."""

    def __init__(self, mountpoint: Path, rng: random.Random, scratch: Path, tag: str) -> None:
        self.mountpoint, self.rng, self.scratch, self.tag = mountpoint, rng, scratch, tag
        self.expected: dict[str, bytes] = {}
        self.removed: set[str] = set()
        self.operations = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            while True:
                self._one()
                self.operations += 1
        except OSError:
            return  # the daemon is gone: ENOTCONN / ECONNABORTED

    def _one(self) -> None:
        rng, mnt = self.rng, self.mountpoint
        choice = rng.random()
        if choice < 0.6 or not self.expected:
            source = self.scratch / f"{self.tag}-{self.operations}.jpg"
            photo(rng, source)
            folder = rng.choice(["", "trips", "family"])
            name = f"{folder}/{source.name}".lstrip("/")
            (mnt / folder).mkdir(exist_ok=True)
            data = source.read_bytes()
            shutil.copyfile(source, mnt / name)  # returned: written and closed
            self.expected[name] = data
        elif choice < 0.8:
            old = rng.choice(sorted(self.expected))
            new = f"renamed-{self.tag}-{self.operations}.jpg"
            os.rename(mnt / old, mnt / new)
            self.expected[new] = self.expected.pop(old)
        elif choice < 0.9:
            gone = rng.choice(sorted(self.expected))
            os.unlink(mnt / gone)
            del self.expected[gone]
            self.removed.add(gone)
        else:
            os.makedirs(mnt / "search" / f"photos {self.tag} {self.operations}", exist_ok=True)


def mount(store: Path, mountpoint: Path) -> int:
    semfs("mount", store, mountpoint)
    return int((store / ".semfs" / "mount.lock").read_text().split()[0])


def status(store: Path) -> dict[str, int]:
    result: dict[str, int] = json.loads(semfs("status", "--json", store).stdout)
    return result


def images_in(store: Path) -> dict[str, bytes]:
    found = {}
    for path in store.rglob("*.jpg"):
        relative = path.relative_to(store)
        if relative.parts[0] != ".semfs":
            found[str(relative)] = path.read_bytes()
    return found


def run_round(number: int, store: Path, mountpoint: Path, rng: random.Random,
              scratch: Path, known: dict[str, bytes], saved: set[str]) -> Round:  # fmt: skip
    pid = mount(store, mountpoint)
    workload = Workload(mountpoint, rng, scratch, f"r{number}")
    workload.expected = dict(known)
    workload.thread.start()
    delay = rng.uniform(0.2, 4.0)
    time.sleep(delay)
    saved |= {name for name in os.listdir(mountpoint / "search")}
    os.kill(pid, signal.SIGKILL)
    workload.thread.join(timeout=60)
    while os.path.exists(f"/proc/{pid}"):
        time.sleep(0.01)

    started = time.monotonic()
    mount(store, mountpoint)  # cleans the dead mount up first
    try:
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while (now := status(store))["queued"] or now["files"] != len(images_in(store)):
            if time.monotonic() > deadline:
                raise SystemExit(f"round {number}: ingest did not drain: {now}")
            time.sleep(0.2)
        recover_s = time.monotonic() - started
        listed_saved = set(os.listdir(mountpoint / "search"))
    finally:
        semfs("unmount", mountpoint)
    present = images_in(store)
    lost = [name for name, data in workload.expected.items() if present.get(name) != data]
    lost += [f"{name} (came back)" for name in workload.removed if name in present]
    lost += [f"saved search {name!r}" for name in saved - listed_saved]
    checked = semfs("check", store, check=False)
    known.clear()
    known.update(present)
    return Round(number, round(delay, 2), workload.operations, len(present), lost,
                 checked.returncode, round(recover_s, 2))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write every round here")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="semfs-crash-") as temporary:
        root = Path(temporary)
        store, mountpoint, scratch = root / "store", root / "mnt", root / "scratch"
        for path in (store, mountpoint, scratch):
            path.mkdir()
        known: dict[str, bytes] = {}
        saved: set[str] = set()
        rounds = []
        for number in range(1, args.rounds + 1):
            result = run_round(number, store, mountpoint, rng, scratch, known, saved)
            rounds.append(result)
            print(f"round {number}: killed after {result.killed_after_s} s, "
                  f"{result.operations} operations, {result.files} images, "
                  f"lost {len(result.lost)}, check exit {result.check_exit}, "
                  f"recovered in {result.recover_s} s", flush=True)  # fmt: skip
            for name in result.lost:
                print(f"    LOST {name}", flush=True)
    operations = sum(r.operations for r in rounds)
    lost = sum(len(r.lost) for r in rounds)
    unclean = sum(r.check_exit != 0 for r in rounds)
    print(f"\n{len(rounds)} kills, {operations} operations, {rounds[-1].files} images at the "
          f"end, lost {lost}, checks not clean {unclean}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rounds], indent=1))
    sys.exit(1 if lost or unclean else 0)


if __name__ == "__main__":
    main()
