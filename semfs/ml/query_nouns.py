"""The things a query names, and which of the offline captioner's labels each covers.

The offline captioner can only say its 1000 ImageNet labels, and each label is a WordNet
noun synset. So a query's nouns tell, before any vector is compared, what the captioner
could have seen: "mammals" covers the 200-odd labels under WordNet's mammal, "a kite"
the bird of prey, "a fire hydrant" none. A store whose photos carry none of the labels a
query's things cover has nothing to show for it; a listing there is the nearest junk
(the issue that asked for this: "scissors" listed a hammer and a tape measure).

A noun is looked up as WordNet's own morphy does (ml/wordnet.py), longest phrase first
("washing machines" is one noun, not two). Only *concrete* nouns give a verdict: those
whose most frequent sense is a physical entity (a dog, snow, a beach). "A red car at
night" gives "car" only: "red" and "night" are nouns too, but abstract ones, which the
labels never name.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from semfs.ml.label_tags import LabelTags, imagenet_synsets
from semfs.ml.wordnet import WORDNET_DIR, NounIndex, NounSynsets

PHYSICAL_ENTITY = 1930  # WordNet 3.0's physical_entity (n00001930)
LONGEST_PHRASE = 3  # words: "hot air balloon"

# Words that are WordNet nouns only by accident ("a" is vitamin A, "in" an inch, "it"
# information technology) and never name what a photo shows.
STOP_WORDS = frozenset({
    "a", "an", "the", "and", "or", "of", "in", "on", "at", "to", "for", "with", "by",
    "from", "into", "onto", "over", "under", "near", "some", "any", "this", "that",
    "these", "those", "it", "its", "is", "are", "was", "be", "being", "been", "has",
    "have", "having", "do", "does", "his", "her", "their", "our", "my", "your", "he",
    "she", "they", "we", "you", "i", "me", "him", "them", "who", "what", "which", "where",
    "when", "one", "two", "three", "many", "few", "more", "most", "very", "just", "also",
    "not", "no",
})  # fmt: skip


@dataclass(frozen=True)
class Term:
    """A concrete thing a query names, and the labels that are it or kinds of it."""

    lemma: str  # WordNet's: "fire_hydrant"
    labels: frozenset[int]  # the labels that are this thing or a kind of it

    @property
    def words(self) -> str:
        return self.lemma.replace("_", " ")


class QueryNouns:
    """Finds a query's concrete nouns and the labels of `label_synsets` they cover."""

    def __init__(self, label_synsets: Sequence[int], wordnet: Path = WORDNET_DIR) -> None:
        self._synsets = NounSynsets(wordnet)
        self._nouns = NounIndex(wordnet)
        self._labels_under: dict[int, set[int]] = {}
        for label, synset in enumerate(label_synsets):
            for ancestor in self._synsets.ancestors(synset):
                self._labels_under.setdefault(ancestor, set()).add(label)

    def terms(self, text: str) -> list[Term]:
        """The concrete things `text` names, in order, each once."""
        return self.terms_of(self.lemmas(text))

    def terms_of(self, lemmas: list[str]) -> list[Term]:
        found: list[Term] = []
        for lemma in lemmas:
            term = self._term(lemma)
            if term is not None and term not in found:
                found.append(term)
        return found

    def lemmas(self, text: str) -> list[str]:
        """The nouns of `text`, longest phrase first, as WordNet lemmas."""
        words = re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", text.lower().replace("'s ", " "))
        lemmas: list[str] = []
        start = 0
        while start < len(words):
            for length in range(min(LONGEST_PHRASE, len(words) - start), 0, -1):
                phrase = words[start : start + length]
                if length == 1 and phrase[0] in STOP_WORDS:
                    continue
                lemma = self._nouns.lemma_of(" ".join(phrase))
                if lemma is not None:
                    lemmas.append(lemma)
                    start += length
                    break
            else:
                start += 1
        return lemmas

    def _term(self, lemma: str) -> Term | None:
        """The term, if the noun is concrete: its most frequent sense a physical entity,
        or some sense covering labels ("kite" is first a bank cheque, but also a bird)."""
        senses = self._nouns.synsets(lemma)
        labels: set[int] = set()
        for sense in senses:
            labels |= self._labels_under.get(sense, set())
        if not labels and PHYSICAL_ENTITY not in self._synsets.ancestors(senses[0]):
            return None
        return Term(lemma, frozenset(labels))


@dataclass(frozen=True)
class QueryEvidence:
    """What would show that a stored photo holds what a query names."""

    nouns: int  # the concrete nouns the query names
    tags: frozenset[str]  # a photo tagged with one of these carries one of their labels
    words: frozenset[str]  # its nouns: a photo whose text read in it holds one says it


class LabelEvidence:
    """A query's evidence among the offline captioner's tags (ml/label_tags.py): the
    names of the labels its nouns cover, the nouns themselves and the whole query (a
    facet's tag such as "people" or a place is a tag too)."""

    def __init__(self, wordnet: Path = WORDNET_DIR) -> None:
        self._nouns = QueryNouns(imagenet_synsets(), wordnet)
        self._tags = LabelTags(wordnet)
        # ~1 ms of lookups a query; file managers ask the same query again and again.
        self.of = functools.lru_cache(maxsize=1024)(self._evidence)

    def _evidence(self, text: str) -> QueryEvidence:
        lemmas = self._nouns.lemmas(text)
        terms = self._nouns.terms_of(lemmas)
        tags = {" ".join(text.lower().split())}
        for term in terms:
            tags.add(term.words)
            for label in term.labels:
                tags.update(self._tags.names_of_label(label))
        words = {lemma for lemma in lemmas if "_" not in lemma}  # abstract ones too: "invoice"
        return QueryEvidence(len(terms), frozenset(tags), frozenset(words))
