"""What an index answers: candidates with their exact angular distances, nearest first."""

from __future__ import annotations

from dataclasses import dataclass
from operator import itemgetter
from typing import Any, NamedTuple

import numpy as np

Vector = np.ndarray[Any, np.dtype[np.float32]]


class Candidate(NamedTuple):
    """A tuple, not a dataclass: hundreds are made per search (416 for the noun cut),
    and a frozen dataclass took 0.27 ms for them against 0.10 (from `tolist()`)."""

    file_id: int
    distance: float  # angular: sqrt(2 - 2 cos), 0 (same) .. 2 (opposite), as Annoy reports
    seq: int  # delta: exact seq of the vector; base: the base's seq (an upper bound)
    from_base: bool


@dataclass(frozen=True)
class Shortlist:
    wanted: int
    base: list[Candidate]  # nearest first
    delta: list[Candidate]  # nearest first

    def merged(self) -> list[Candidate]:
        """Base and delta as one list, nearest first; ties in file order (see in_order)."""
        return in_order(self.base + self.delta)

    def exhausted(self, max_distance: float) -> bool:
        """Whether asking for more candidates could find more within `max_distance`:
        only if a source returned all it was asked for, all of them that close."""
        return all(
            len(found) < self.wanted or found[-1].distance > max_distance
            for found in (self.base, self.delta)
        )


# Distances this close tie: a duplicate photo has the same vector, but its distance from
# the base (FAISS, Annoy) and from the delta (numpy) may differ in the last bits.
TIE = 1e-6


def in_order(candidates: list[Candidate]) -> list[Candidate]:
    """Nearest first, and a run of tied candidates (each within TIE of the one before)
    by file id, so that a listing computed again lists duplicates at the same ranks: a
    sort by distance alone left them in whatever order the index gave. Two stable sorts
    on one field each: a (distance, file id) key took 95 us for 416 candidates with many
    exact ties, these 80, the sort by distance alone 34 (2026-12-07)."""
    by_file = sorted(candidates, key=itemgetter(0))
    ordered = sorted(by_file, key=itemgetter(1))  # stable: ties stay in file order
    gaps = np.diff([candidate.distance for candidate in ordered])
    if not ((gaps > 0.0) & (gaps <= TIE)).any():
        return ordered  # every tie is exact
    # Near ties (the base's and the delta's arithmetic): file order within each run.
    runs: list[Candidate] = []
    start = 0
    for end in range(1, len(ordered) + 1):
        if end == len(ordered) or gaps[end - 1] > TIE:
            runs += sorted(ordered[start:end], key=itemgetter(0))
            start = end
    return runs


def angular_distances(matrix: Vector, vector: Vector) -> Vector:
    # einsum, not `@`: OpenBLAS splits a matrix-vector product over threads, and on a busy
    # 2-core machine those wait for each other: 12 ms for 2,000 rows instead of 0.16 ms
    # (10,000 rows: 12 ms against 0.7 ms), measured in one run (docs/benchmarks-search.md).
    cosines = np.einsum("ij,j->i", matrix, vector)
    return angular_from_cosines(cosines)


def angular_from_cosines(cosines: np.ndarray) -> Vector:
    distances: Vector = np.sqrt(np.maximum(0.0, 2.0 - 2.0 * cosines)).astype(np.float32)
    return distances


def nearest(distances: Vector, n: int) -> np.ndarray:
    """Row numbers of the n smallest finite distances, nearest first, equal distances by
    row. Which rows are taken is fixed too: of the rows tied at the n-th distance, the
    first (argpartition alone takes any of them)."""
    n = min(n, len(distances))
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    best = np.argpartition(distances, n - 1)[:n]
    last = distances[best].max()
    inside = best[distances[best] < last]
    tied = np.flatnonzero(distances == last)[: n - len(inside)]
    best = np.concatenate([inside, tied])
    best = best[np.lexsort((best, distances[best]))]
    return best[np.isfinite(distances[best])]
