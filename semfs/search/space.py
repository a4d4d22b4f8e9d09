"""A search space: one kind of vector, its index, the searcher over it, and its cut.

A store has up to two, built the same way by the engine: the captions' space (text
search under search/ and tags/) and the images' space (search by example, similar/).
"""

from __future__ import annotations

from dataclasses import dataclass

from semfs.search.index import VectorIndex
from semfs.search.searcher import Searcher


@dataclass(frozen=True)
class SearchSpace:
    model: str  # the name the space's vectors carry in the catalog (embedder or features)
    index: VectorIndex
    searcher: Searcher
    max_distance: float  # the relevance cut: angular distances beyond it are not listed
