"""The daemon's heap: survivors of full collections are frozen, so the next ones walk
only what is new, and collect_all() still frees cycles among frozen objects; the daemon
runs it only when searches have paused."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
import trio

from semfs import heap
from semfs.daemon import tidy
from semfs.search.foreground import Foreground


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


@pytest.fixture
def freezing() -> Iterator[None]:
    heap.freeze_after_full_collections()
    try:
        yield
    finally:
        heap.stop_freezing()


def tracked(thing: object) -> bool:
    """Whether a collection would walk `thing` (frozen objects are in no generation)."""
    return any(other is thing for other in gc.get_objects())


def test_a_full_collection_freezes_what_survives(freezing: None) -> None:
    survivor = Node()
    assert tracked(survivor)
    gc.collect(1)  # a younger generation's collection freezes nothing
    assert tracked(survivor)
    gc.collect()
    assert not tracked(survivor)
    assert gc.get_freeze_count() > 0
    young = Node()  # made after: walked until the next full collection
    assert tracked(young)


def test_collect_all_frees_cycles_among_frozen_objects(freezing: None) -> None:
    cycle = Node()
    gone = weakref.ref(cycle)
    gc.collect()  # frozen
    del cycle
    gc.collect()
    assert gone() is not None  # frozen garbage waits ...
    assert heap.collect_all() >= 1
    assert gone() is None  # ... for collect_all
    assert gc.get_freeze_count() > 0  # and what survived it is frozen again


def test_stop_freezing_undoes_it() -> None:
    heap.freeze_after_full_collections()
    heap.freeze_after_full_collections()  # once only
    heap.stop_freezing()
    survivor = Node()
    gc.collect()
    assert tracked(survivor)
    assert gc.get_freeze_count() == 0


@pytest.fixture
def collections(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """When the tidy ran heap.collect_all (trio's clock), instead of running it."""
    ran: list[float] = []
    monkeypatch.setattr(heap, "collect_all", lambda: ran.append(trio.current_time()))
    return ran


def test_tidy_waits_for_searches_to_pause(collections: list[float]) -> None:
    foreground = Foreground(linger=0.0)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            with foreground.searching():
                nursery.start_soon(tidy.tidy_heap, foreground, 0.01, 0.05, 0.01, 3600.0)
                await trio.sleep(0.3)
                assert collections == []  # due, but a search runs
            await trio.sleep(0.3)
            assert collections  # searches paused for 0.05 s: it ran
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_tidy_runs_anyway_after_the_longest_deferral(collections: list[float]) -> None:
    foreground = Foreground(linger=0.0)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            with foreground.searching():  # a client that never pauses
                nursery.start_soon(tidy.tidy_heap, foreground, 0.01, 3600.0, 0.01, 0.1)
                with trio.fail_after(10):
                    while not collections:
                        await trio.sleep(0.01)
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_collect_all_freezes_nothing_when_freezing_is_off() -> None:
    heap.collect_all()  # as `semfs` commands and the tests call it (the captioner's release)
    assert gc.get_freeze_count() == 0
