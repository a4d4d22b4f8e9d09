"""Full garbage collections at quiet moments: the daemon's frozen heap (semfs/heap.py)
is walked only when no search has run for a while, so that garbage in reference cycles
among frozen objects is freed without pausing a search."""

from __future__ import annotations

import trio

from semfs import heap
from semfs.search.foreground import Foreground

TIDY_EVERY = 600.0  # seconds between full collections
QUIET = 5.0  # seconds without a search before one runs
RECHECK = 1.0  # seconds between looks for a quiet moment
MAX_DEFER = 3600.0  # a client that never pauses still gets one after this long


async def tidy_heap(
    foreground: Foreground,
    every: float = TIDY_EVERY,
    quiet: float = QUIET,
    recheck: float = RECHECK,
    max_defer: float = MAX_DEFER,
) -> None:
    """Forever: every `every` seconds, once searches have paused for `quiet` (or after
    `max_defer`), a full collection on this (the trio) thread: it holds the interpreter
    lock throughout, whichever thread runs it."""
    while True:
        await trio.sleep(every)
        deferred = trio.current_time()
        while not foreground.quiet_for(quiet) and trio.current_time() - deferred < max_defer:
            await trio.sleep(recheck)
        heap.collect_all()
