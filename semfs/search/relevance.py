"""A relevance cut that decides per query, from the things the query names.

One angular distance for every query was wrong both ways (issue 19): it listed the
nearest junk for a thing absent from the store ("scissors": a hammer, a tape measure)
and cut broad words short ("animals": 9 of 48). With the offline captioner a query's
nouns say more than its distances (semfs/ml/query_nouns.py): each covers the labels
that are it or a kind of it, and a photo tagged with one of those labels carries it, as
does a photo whose text read in the image (OCR) holds the noun ("invoice").
Among the hits within a loose cut (`LOOSE_ABOVE` the calibrated one):

- some carry what the query names: it is here. The hits within the calibrated cut are
  listed and, for a query of one noun ("mammals", "a kite"), the photos carrying it
  first, nearest first, out to the loose cut;
- none does, but the query names concrete things: they are absent (the captioner could
  have said them and did not, or cannot say them at all). Only a near match is listed,
  within `STRICT_BELOW` the calibrated cut;
- the query names no concrete thing ("at night", "christmas"): the calibrated cut.

The margins were chosen on the tuning part of scripts/eval_cut.py's queries and checked
on its held-out part (docs/evaluation.md); they are offsets so that every embedder's
calibrated cut carries them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

STRICT_BELOW = 0.225  # a query for absent things lists hits within cut - this (0.9)
LOOSE_ABOVE = 0.175  # evidence is looked for, and listed first, out to cut + this (1.3)


class Evidence(Protocol):
    @property
    def nouns(self) -> int: ...  # the concrete nouns the query names
    @property
    def tags(self) -> frozenset[str]: ...  # a photo tagged with one carries one of them
    @property
    def words(self) -> frozenset[str]: ...  # a photo whose text says one carries it


class ScoredHit(Protocol):
    @property
    def file_id(self) -> int: ...
    @property
    def distance(self) -> float: ...


# (file ids, tags, words) -> those of the files that carry one (SearchReads.carrying)
Carrying = Callable[[Collection[int], Collection[str], Collection[str]], set[int]]
H = TypeVar("H", bound=ScoredHit)


@dataclass(frozen=True)
class Listing:
    """What a query lists: the hits within `cut`, after those of `first` (nearest first,
    out to the loose cut) if there are any."""

    cut: float
    first: frozenset[int] = frozenset()


@dataclass(frozen=True)
class NounCut:
    """The cut of one search space: how a query's evidence is found and looked up."""

    evidence_of: Callable[[str], Evidence]  # LabelEvidence.of
    carrying: Carrying  # SearchReads.carrying

    def plan(self, text: str, near: Collection[int], cut: float) -> Listing:
        """The listing of `text`, given the files `near` it: the SHORTLIST nearest
        candidates within cut + LOOSE_ABOVE."""
        evidence = self.evidence_of(text)
        return listing(evidence, self.carrying(near, evidence.tags, evidence.words), cut)

    def select(self, text: str, hits: Sequence[H], k: int, cut: float) -> list[H]:
        """What to list of `hits` (nearest first, out to cut + LOOSE_ABOVE) for `text`:
        the plan applied to a list (Searcher applies it to the index's candidates)."""
        listing = self.plan(text, [hit.file_id for hit in hits], cut)
        within = [hit for hit in hits[:k] if hit.distance <= listing.cut]
        first = [hit for hit in hits if hit.file_id in listing.first]
        return (first + [hit for hit in within if hit.file_id not in listing.first])[:k]


def listing(evidence: Evidence, carrying: Collection[int], cut: float) -> Listing:
    """The listing of a query with this evidence, given those of the files near it
    that carry it."""
    if not carrying:
        return Listing(cut - STRICT_BELOW if evidence.nouns else cut)
    if evidence.nouns > 1:
        return Listing(cut)
    return Listing(cut, frozenset(carrying))
