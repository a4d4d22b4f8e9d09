"""Searches first: the background work (ingest, the features, text and facts passes)
steps aside while a search runs.

Both run in threads of one process, and CPython runs one thread's Python at a time. A
background thread that holds the interpreter lock keeps it for up to the switch interval
(5 ms) each time a search's thread asks for it, and a search asks many times (every
SQLite call, every numpy call, every hand-over between the trio thread and its worker
thread gives the lock up): a search that takes 8 ms alone took 40-80 ms beside a busy
backfill. Niceness does not help here; the lock is not the kernel's to share.

So the background's loops call `step_aside()` between images: while a search is in
flight, and for LINGER after it (the kernel's next requests of the same `ls`, answered
on the trio thread), it waits, giving up the lock. So that a client searching without
pause cannot starve ingest, one wait lasts at most MAX_WAIT, after which the background
works that long before it waits again: at worst it runs half the time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

LINGER = 0.02  # seconds after a search the background still waits (the reply, closedir)
MAX_WAIT = 0.1  # seconds the background waits at most, then works as long before waiting


class Foreground:
    """Counts the searches in flight; background threads step aside for them."""

    def __init__(self, linger: float = LINGER, max_wait: float = MAX_WAIT) -> None:
        self._linger = linger
        self._max_wait = max_wait
        # Waiters sleep until told, not polling: a thread that wakes during a search
        # takes the interpreter lock from it (measured: 3-6 ms more a busy `ls` at 5 ms
        # polls).
        self._changed = threading.Condition()
        self._searches = 0  # GUARDED_BY(_changed)
        self._quiet_until = 0.0  # GUARDED_BY(_changed): monotonic end of the last linger
        self._free_until = 0.0  # GUARDED_BY(_changed): the background's turn ends then

    @contextmanager
    def searching(self) -> Iterator[None]:
        """Around a search (any thread)."""
        with self._changed:
            self._searches += 1
        try:
            yield
        finally:
            with self._changed:
                self._searches -= 1
                self._quiet_until = max(self._quiet_until, time.monotonic() + self._linger)
                if self._searches == 0:
                    self._changed.notify_all()

    def expect(self) -> None:
        """A search may follow (its folder was just looked up): the background steps
        aside from now for LINGER, so that it is parked when the search starts."""
        with self._changed:
            self._quiet_until = max(self._quiet_until, time.monotonic() + self._linger)

    def busy(self) -> bool:
        """Whether a search is in flight or just ended."""
        with self._changed:
            return self._searches > 0 or time.monotonic() < self._quiet_until

    def quiet_for(self, seconds: float) -> bool:
        """Whether no search is in flight and none ended in the last `seconds`."""
        with self._changed:
            last_end = self._quiet_until - self._linger
            return self._searches == 0 and time.monotonic() >= last_end + seconds

    def step_aside(self) -> float:
        """Wait while searches run (a background thread, between two pieces of work);
        returns the seconds waited."""
        started = time.monotonic()
        if self._searches == 0 and started >= self._quiet_until:  # unlocked: a hint only
            return 0.0
        deadline = started + self._max_wait
        with self._changed:
            while True:
                now = time.monotonic()
                if now < self._free_until:
                    return now - started  # the background's turn, after a long wait
                if self._searches == 0 and now >= self._quiet_until:
                    return now - started
                if now >= deadline:
                    self._free_until = now + self._max_wait
                    return now - started
                wake = deadline if self._searches else min(self._quiet_until, deadline)
                self._changed.wait(wake - now)
