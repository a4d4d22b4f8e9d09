"""Lazy: made once on first use, shared by every thread, made again after a failure."""

from __future__ import annotations

import threading
import time

import pytest

from semfs.ml.lazy import Lazy


def test_threads_asking_at_once_share_one_object() -> None:
    made: list[object] = []

    def make() -> object:
        time.sleep(0.05)  # long enough for every thread to be waiting
        made.append(object())
        return made[-1]

    shared = Lazy(make)
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(shared.get())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1 and got == made * 8
    assert shared.get() is made[0]


def test_a_failed_make_is_tried_again() -> None:
    calls = 0

    def make() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("model missing")
        return "loaded"

    shared = Lazy(make)
    with pytest.raises(RuntimeError, match="model missing"):
        shared.get()
    assert shared.get() == "loaded" and shared.get() == "loaded" and calls == 2
