"""An object made on first use and then shared by every thread: a model or a word list
loaded once per process (or per owner) when it is first needed, not at import."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Lazy(Generic[T]):
    """`get()` makes the object with `make` the first time, in the asking thread, and
    returns that same object from then on; a thread asking meanwhile waits for it. If
    `make` raises, nothing is kept and the next `get()` tries again."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._value: T | None = None  # GUARDED_BY(_lock)

    def get(self) -> T:
        with self._lock:
            if self._value is None:
                self._value = self._make()
            return self._value
