"""New vectors since the base, searched exactly with numpy until the next rebuild."""

from __future__ import annotations

import numpy as np

from semfs.search.shortlist import Candidate, Vector, angular_distances, nearest


class Delta:
    """Not thread-safe: the index locks."""

    def __init__(self, dimensions: int) -> None:
        self._matrix = np.zeros((64, dimensions), dtype=np.float32)
        self._ids: list[int] = []
        self._seqs: list[int] = []
        self._row_of: dict[int, int] = {}  # file id -> its live row
        self._dead = np.zeros(64, dtype=bool)

    def __len__(self) -> int:
        return len(self._row_of)

    def add(self, file_id: int, seq: int, vector: Vector) -> None:
        old = self._row_of.get(file_id)
        if old is not None:
            self._dead[old] = True
        row = len(self._ids)
        if row == len(self._matrix):
            self._matrix = np.concatenate([self._matrix, np.zeros_like(self._matrix)])
            self._dead = np.concatenate([self._dead, np.zeros_like(self._dead)])
        self._matrix[row] = vector
        self._ids.append(file_id)
        self._seqs.append(seq)
        self._row_of[file_id] = row

    def search(self, vector: Vector, n: int) -> list[Candidate]:
        rows = len(self._ids)
        if rows == 0:
            return []
        distances = angular_distances(self._matrix[:rows], vector)
        distances[self._dead[:rows]] = np.inf
        # Partitioned, then whole rows at once: per row, numpy scalars and a sort of every
        # row cost ~1 ms a search with a few thousand rows (py-spy, 100 k store, busy).
        best = nearest(distances, n)
        ids, seqs = self._ids, self._seqs
        return [
            Candidate(ids[row], distance, seqs[row], False)
            for row, distance in zip(best.tolist(), distances[best].tolist(), strict=True)
        ]

    def newer_than(self, seq: int) -> Delta:
        """A copy without the vectors a new base (holding up to `seq`) has taken over."""
        kept = Delta(self._matrix.shape[1])
        for file_id, row in self._row_of.items():
            if self._seqs[row] > seq:
                kept.add(file_id, self._seqs[row], self._matrix[row])
        return kept
