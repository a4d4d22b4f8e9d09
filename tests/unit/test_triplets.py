"""Subject-verb-object triplets of captions, by rule: what they find, what they leave
alone, and properties over any text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from semfs.ml.triplets import Triplet, agreement, head, stem, triplets


def test_caption_sentences_give_their_triplets() -> None:
    assert triplets("a man riding a horse on a beach") == [Triplet("man", "riding", "horse")]
    assert triplets("two dogs playing in the snow") == [Triplet("dogs", "playing in", "snow")]
    assert triplets("A cat sits on a laptop keyboard.") == [
        Triplet("cat", "sits on", "laptop keyboard")
    ]
    assert triplets("a woman is sitting on a bench next to a dog") == [
        Triplet("woman", "sitting on", "bench")
    ]
    assert triplets("people walk down the street") == [Triplet("people", "walk down", "street")]
    assert triplets("a dog chasing a cat and a dog chasing a cat") == [
        Triplet("dog", "chasing", "cat")
    ]  # each once


def test_nouns_that_look_like_verbs_and_verbless_captions_give_none() -> None:
    assert triplets("a photo of an espresso (a small serving of concentrated coffee)") == []
    assert triplets("a painting of a mountain") == []
    assert triplets("a building with a clock on the top") == []
    assert triplets("a long walk on the beach") == []
    assert triplets("") == []


def test_matching_ignores_number_and_verb_form_but_not_roles() -> None:
    query = triplets("a dog chasing a cat")
    assert agreement(query, triplets("two dogs chase the cat")) == 1
    assert agreement(query, triplets("a cat chases a dog")) == -1
    assert agreement(query, triplets("a dog sleeping on a sofa")) == 0
    assert (head("two brown dogs"), head("grass")) == ("dog", "grass")
    assert stem("sitting") == stem("sits") and stem("riding") == stem("rides")


WORDS = "a the man dogs cat riding chases sits on in playing street is are of , . ( ) painting"
words = st.sampled_from(WORDS.split())


@given(st.lists(words, max_size=14).map(" ".join))
def test_triplets_come_from_the_caption_itself(caption: str) -> None:
    found = triplets(caption)
    assert len(found) == len(set(found))
    spoken = caption.lower().split()
    for triplet in found:
        for part in triplet:
            assert part and all(word in spoken for word in part.split())
        assert agreement([triplet], [triplet]) == 1


@given(st.text(max_size=200))
def test_any_text_is_handled(text: str) -> None:
    for triplet in triplets(text):
        assert all(isinstance(part, str) and part for part in triplet)
