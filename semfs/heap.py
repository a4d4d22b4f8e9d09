"""The daemon's heap and CPython's cyclic garbage collector: pauses that do not grow.

A collection holds the interpreter lock while it walks the objects it tracks, so every
thread of the daemon, searches included, stops for it; a collection of the oldest
generation walks every object alive. In the daemon most of those live until unmount:
the libraries' and models' objects (132,000 at startup), then whatever searches keep
(each query folder its result entries). Measured on a 1 M-image store (2026-12-07,
docs/benchmarks-search.md): full collections of 30-150 ms every few seconds while
queries arrived, longer as folders accumulated, and the 5 slowest of 1,000 searches
were exactly the 5 that ran beside one.

So after each full collection the survivors are frozen (`gc.freeze()`: moved to a
permanent generation that collections skip). The next full collection walks only the
objects that reached the oldest generation since, and its pause stays short however
large the heap grows. Frozen objects are still freed by reference counting as usual;
only garbage in reference cycles among them waits, for `collect_all()`, which the daemon
runs when no search has run for a while (and the low-memory profile when it lets the
captioner go), so that memory stays bounded.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

log = logging.getLogger(__name__)


def freeze_after_full_collections() -> None:
    """From now on, freeze what survives each full collection (once per process)."""
    if _freeze_survivors not in gc.callbacks:
        gc.callbacks.append(_freeze_survivors)


def stop_freezing() -> None:
    """Undo freeze_after_full_collections, and unfreeze (the next collection walks all)."""
    while _freeze_survivors in gc.callbacks:
        gc.callbacks.remove(_freeze_survivors)
    gc.unfreeze()


def _freeze_survivors(phase: str, info: dict[str, Any]) -> None:
    if phase == "stop" and info["generation"] == 2:
        gc.freeze()


def collect_all() -> int:
    """A full collection of everything, the frozen objects included (whose survivors are
    frozen again, if freezing is on). Pauses every thread (about 10 ms per 100,000
    objects): call it when no search runs. Returns the objects collected."""
    started = time.perf_counter()
    gc.unfreeze()
    collected = gc.collect()
    log.debug("heap: %d objects collected, %d frozen, in %.1f ms", collected,
              gc.get_freeze_count(), (time.perf_counter() - started) * 1000)  # fmt: skip
    return collected
