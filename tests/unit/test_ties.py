"""Equal distances (duplicate photos) come out in one fixed order, whatever the index."""

from __future__ import annotations

import numpy as np

from semfs.search.shortlist import TIE, Candidate, Shortlist, nearest


def test_nearest_orders_ties_by_row_and_takes_the_first_rows_at_the_boundary() -> None:
    rng = np.random.default_rng(3)
    distances = rng.uniform(0.5, 1.5, size=5_000).astype(np.float32)
    tied = rng.choice(5_000, size=1_000, replace=False)
    distances[tied] = 0.25  # 1,000 copies: argsort's quicksort scrambles such runs
    distances[rng.choice(5_000, size=50)] = np.inf  # tombstones are never returned

    best = nearest(distances, 300)  # the boundary falls inside the run of copies
    assert best.tolist() == np.flatnonzero(distances == np.float32(0.25)).tolist()[:300]

    everything = nearest(distances, 5_000)
    finite = np.flatnonzero(np.isfinite(distances))
    expected = sorted(finite.tolist(), key=lambda row: (distances[row], row))
    assert everything.tolist() == expected


def test_merged_ranks_base_and_delta_ties_by_file_even_a_few_bits_apart() -> None:
    # FAISS and numpy may put the same vector a few float bits apart.
    base = [Candidate(9, 0.5, 100, True), Candidate(4, 0.5 + TIE / 4, 100, True)]
    delta = [Candidate(7, 0.5 - TIE / 4, 120, False), Candidate(2, 0.7, 130, False)]
    merged = Shortlist(4, base, delta).merged()
    assert [c.file_id for c in merged] == [4, 7, 9, 2]
    assert Shortlist(4, list(reversed(base)), delta).merged() == merged


def test_merged_keeps_distinct_distances_nearest_first() -> None:
    base = [Candidate(1, 0.30, 5, True), Candidate(2, 0.30 + 10 * TIE, 5, True)]
    delta = [Candidate(0, 0.31, 6, False)]
    assert [c.file_id for c in Shortlist(3, base, delta).merged()] == [1, 2, 0]


def test_exact_and_near_ties_order_alike_in_a_long_list() -> None:
    rng = np.random.default_rng(5)
    levels = rng.uniform(0.5, 1.5, size=60)
    candidates = [
        Candidate(int(file_id), float(levels[file_id % 60]), 1, bool(file_id % 2))
        for file_id in rng.permutation(400)
    ]
    exact = Shortlist(400, candidates, []).merged()
    assert [c.file_id for c in exact] == sorted(range(400), key=lambda f: (levels[f % 60], f))
    # One copy of each level a few bits further (as from the other source): same order.
    nudged = [c._replace(distance=c.distance + TIE / 3) if c.file_id < 60 else c
              for c in candidates]  # fmt: skip
    assert [c.file_id for c in Shortlist(400, nudged, []).merged()] == [c.file_id for c in exact]
