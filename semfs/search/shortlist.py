"""What an index answers: candidates with their exact angular distances, nearest first."""

from __future__ import annotations

from dataclasses import dataclass
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
        return sorted(self.base + self.delta, key=lambda candidate: candidate.distance)

    def exhausted(self, max_distance: float) -> bool:
        """Whether asking for more candidates could find more within `max_distance`:
        only if a source returned all it was asked for, all of them that close."""
        return all(
            len(found) < self.wanted or found[-1].distance > max_distance
            for found in (self.base, self.delta)
        )


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
    """Row numbers of the n smallest finite distances, nearest first."""
    n = min(n, len(distances))
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    best = np.argpartition(distances, n - 1)[:n]
    best = best[np.argsort(distances[best])]
    return best[np.isfinite(distances[best])]
