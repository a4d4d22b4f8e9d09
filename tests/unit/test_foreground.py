"""Foreground: background work waits while searches run, and is never starved by them."""

from __future__ import annotations

import threading
import time

from semfs.search.foreground import Foreground


def test_no_search_no_wait() -> None:
    foreground = Foreground(linger=10.0, max_wait=10.0)
    assert foreground.step_aside() == 0.0
    assert not foreground.busy()


def test_a_search_expected_parks_the_background_for_the_linger() -> None:
    foreground = Foreground(linger=0.1, max_wait=30.0)
    foreground.expect()
    assert foreground.busy()
    assert 0.05 <= foreground.step_aside() < 5.0
    assert not foreground.busy()


def test_background_waits_for_the_search_and_its_linger() -> None:
    foreground = Foreground(linger=0.05, max_wait=30.0)
    searching, finish = threading.Event(), threading.Event()
    ended: list[float] = []

    def search() -> None:
        with foreground.searching():
            searching.set()
            finish.wait()
            ended.append(time.monotonic())

    searcher = threading.Thread(target=search)
    searcher.start()
    searching.wait()
    assert foreground.busy()
    stepped_aside: list[float] = []  # when step_aside returned

    def background_step() -> None:
        foreground.step_aside()
        stepped_aside.append(time.monotonic())

    background = threading.Thread(target=background_step)
    background.start()
    time.sleep(0.1)
    assert not stepped_aside  # still waiting: the search has not ended
    finish.set()
    searcher.join()
    background.join(timeout=10)
    assert stepped_aside and stepped_aside[0] >= ended[0] + 0.05  # waited out the linger too
    assert foreground.step_aside() < 0.05  # once the linger is over


def test_a_search_without_end_cannot_starve_the_background() -> None:
    foreground = Foreground(linger=0.0, max_wait=0.1)
    finish = threading.Event()

    def endless_search() -> None:
        with foreground.searching():
            finish.wait()

    searcher = threading.Thread(target=endless_search)
    searcher.start()
    try:
        while not foreground.busy():
            time.sleep(0.001)
        waited = foreground.step_aside()
        assert 0.1 <= waited < 5.0  # at most max_wait (plus scheduling)
        assert foreground.step_aside() < 0.05  # then the background's turn, as long
        time.sleep(0.15)
        assert foreground.step_aside() >= 0.1  # and after its turn it waits again
    finally:
        finish.set()
        searcher.join()


def test_quiet_for_counts_from_the_last_search() -> None:
    foreground = Foreground(linger=0.01, max_wait=1.0)
    assert foreground.quiet_for(3600.0)  # no search yet
    with foreground.searching():
        assert not foreground.quiet_for(0.0)
    assert not foreground.quiet_for(60.0)
    time.sleep(0.05)
    assert foreground.quiet_for(0.03)
    foreground.expect()  # a query folder looked up: a search is on its way
    assert not foreground.quiet_for(0.03)
