"""The query parser, property-based: every query has a name that parses back to it, any
text either parses or is refused with a message, and names stay valid file names."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from semfs.search.query import (
    SORTS,
    Query,
    QuerySyntaxError,
    format_query,
    parse_example_modifiers,
    parse_query,
    split_example,
)

LETTERS = st.characters(categories=("Ll", "Lu", "Nd"), max_codepoint=0x2FF)
WORD = st.text(LETTERS, min_size=1, max_size=8)
# A text word: not a modifier (no leading - or @, no key:value).
TEXT_WORD = WORD.filter(lambda w: not w.startswith(("-", "@")) and ":" not in w)
LOWER_WORD = st.text(st.characters(categories=("Ll", "Nd"), max_codepoint=0x7F), min_size=1,
                     max_size=8)  # fmt: skip


@st.composite
def queries(draw: st.DrawFn) -> Query:
    text = " ".join(draw(st.lists(TEXT_WORD, max_size=4)))
    years = None
    if draw(st.booleans()):
        first = draw(st.integers(1900, 2100))
        years = (first, draw(st.integers(first, 2100)))
    camera = draw(st.none() | LOWER_WORD)
    folder = draw(st.none() | LOWER_WORD)
    if not text and years is None and camera is None and folder is None:
        text = "beach"
    default_sort = "score" if text else "date"
    return Query(
        text=text,
        exclude=tuple(draw(st.lists(WORD, max_size=3))),
        k=draw(st.none() | st.integers(1, 1000)),
        max_distance=draw(st.none() | st.floats(0.0, 2.0)),
        sort=draw(st.sampled_from(SORTS)) if draw(st.booleans()) else default_sort,
        years=years,
        camera=camera,
        folder=folder,
    )


@given(queries())
def test_every_query_has_a_name_that_parses_back_to_it(query: Query) -> None:
    name = format_query(query)
    assert parse_query(name) == query
    assert "/" not in name and "\0" not in name  # a valid file name


@given(st.text(max_size=80))
def test_any_text_parses_or_is_refused_with_a_message(text: str) -> None:
    try:
        query = parse_query(text)
    except QuerySyntaxError as error:
        assert str(error)
    else:
        assert query.text == " ".join(query.text.split())
        assert query.text or query.has_filters


@given(queries(), st.lists(st.sampled_from([" ", "  ", "\t"]), min_size=1, max_size=3))
def test_spacing_does_not_matter(query: Query, gaps: list[str]) -> None:
    name = format_query(query)
    assert parse_query(gaps[0] + name.replace(" ", gaps[-1]) + gaps[0]) == query


def test_the_documented_examples() -> None:
    assert parse_query("beach -people") == Query(text="beach", exclude=("people",))
    assert parse_query("snow @k=20") == Query(text="snow", k=20)
    assert parse_query("snow @t=0.8") == Query(text="snow", max_distance=0.8)
    assert parse_query("cats @sort=date").sort == "date"
    assert parse_query("year:2023") == Query(years=(2023, 2023), sort="date")
    assert parse_query("dog year:2019-2021 camera:Canon in:Holiday") == Query(
        text="dog", years=(2019, 2021), camera="canon", folder="holiday"
    )
    assert parse_query("a 16:9 photo").text == "a 16:9 photo"  # not a filter
    assert parse_query("well-known - dash").text == "well-known - dash"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("snow @colour=red", "unknown modifier '@colour=red'"),
        ("snow @k=0", "k must be a whole number from 1 to 1000"),
        ("snow @k=many", "k must be a whole number"),
        ("snow @t=3", "t is an angular distance from 0 to 2"),
        ("snow @sort=random", "sort by one of score, date, oldest, name, size"),
        ("snow @k=3 @k=4", "is given twice"),
        ("snow @k", "needs a value"),
        ("snow lens:50mm", "unknown filter 'lens:50mm'"),
        ("snow year:23", "a year is 2023, or a range 2019-2021"),
        ("snow year:2021-2019", "the range runs backwards"),
        ("snow camera:", "needs a value"),
        ("-people", "at least one word"),
        ("@k=5", "at least one word"),
    ],
)
def test_bad_modifiers_say_what_is_wrong(name: str, message: str) -> None:
    with pytest.raises(QuerySyntaxError, match=message.replace("(", r"\(")):
        parse_query(name)


# An image's name under similar/: any characters but "/" and NUL, not ending in a
# modifier-shaped word or in whitespace.
IMAGE_NAME = st.text(
    st.characters(blacklist_characters="/\0", max_codepoint=0x2FF), min_size=1, max_size=40
).filter(lambda name: name.strip() == name and split_example(name)[0] == name)


@given(IMAGE_NAME, queries())
def test_an_example_name_splits_into_the_image_and_its_modifiers(name: str, query: Query) -> None:
    modifiers = Query(k=query.k, max_distance=query.max_distance, sort=query.sort,
                      years=query.years, camera=query.camera, folder=query.folder)  # fmt: skip
    # Written as a query's modifiers are (an example's default order is by score too).
    written = format_query(replace(modifiers, text="image")).removeprefix("image").strip()
    assert split_example(f"{name} {written}".rstrip()) == (name, modifiers)
    assert parse_example_modifiers(written) == modifiers


def test_example_names_keep_words_that_are_not_modifiers() -> None:
    assert split_example("party @home.jpg") == ("party @home.jpg", Query())
    assert split_example("IMG 1 -edit.jpg in:2023") == ("IMG 1 -edit.jpg", Query(folder="2023"))
    assert split_example("@k=5") == ("@k=5", Query())  # nothing left to name the image
    assert split_example("my cat.png  @t=1.2 YEAR:2023") == (
        "my cat.png",
        Query(max_distance=1.2, years=(2023, 2023)),
    )


@pytest.mark.parametrize(
    ("name", "message"),
    [("cat.png @k=0", "k must be a whole number"), ("cat.png year:99", "a year is 2023")],
)
def test_bad_example_modifiers_say_what_is_wrong(name: str, message: str) -> None:
    with pytest.raises(QuerySyntaxError, match=message):
        split_example(name)


def test_modifiers_alone_refuse_words() -> None:
    with pytest.raises(QuerySyntaxError, match="an example takes only"):
        parse_example_modifiers("@k=5 cats")
