"""Queries with modifiers: what a directory name under `search/` asks for.

    beach -people @k=20 @t=0.9 @sort=date year:2023 camera:canon in:holiday

Words are the text searched for by meaning. Beside them, each a word of its own:

- `-word` leaves out images that are results for `word` (their caption is within the
  relevance cut of it, or names it);
- `@k=N` lists at most N results; `@t=D` sets the relevance cut (angular distance, 0..2);
  `@sort=score|date|oldest|name|size` orders them (best match, newest or oldest photo
  first, by file name, largest first);
- `year:2023` or `year:2019-2021` (when the photo was taken, from EXIF, else the file's
  time), `camera:canon` (EXIF make and model contain it), `in:holiday` (a folder on
  the image's path contains it) keep only the images that match.

A name with filters and no words lists the matching images themselves (newest first).
Every modifier is valid in a file name (no `/`); an unknown one is an error that names
it, so a typo is never silently searched for as text.

Under `similar/` the name is an image's name, which may hold any word, so only its last
words are read as modifiers, and only those shaped like one: `@k=`, `@t=`, `@sort=`,
`year:`, `camera:`, `in:` (`split_example`). `-word` stays part of the name there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

SORTS = ("score", "date", "oldest", "name", "size")
SETTINGS = ("k", "t", "sort")
FILTERS = ("year", "camera", "in")
MAX_K = 1000
_YEAR = re.compile(r"(\d{4})(?:-(\d{4}))?")
# `key:value` is a filter only when key is a word of letters; "16:9" stays text.
_FILTER = re.compile(r"([A-Za-z]+):(.*)")
# What an example's modifiers start with; the last word of its name, if it does.
_MODIFIER_START = r"@(?:k|t|sort)=|(?i:year|camera|in):"
_EXAMPLE_MODIFIER = re.compile(rf"(.*?)\s+((?:{_MODIFIER_START})\S*)", re.S)


class QuerySyntaxError(ValueError):
    """A modifier that cannot be understood; the message says which and why."""


@dataclass(frozen=True)
class Query:
    text: str = ""  # the words searched for by meaning, single-spaced
    exclude: tuple[str, ...] = ()
    k: int | None = None
    max_distance: float | None = None
    sort: str = "score"
    years: tuple[int, int] | None = None  # inclusive
    camera: str | None = None
    folder: str | None = None

    @property
    def has_filters(self) -> bool:
        return any(v is not None for v in (self.years, self.camera, self.folder))


def parse_query(name: str) -> Query:
    """The query a name asks for; QuerySyntaxError for a modifier it cannot take."""
    words: list[str] = []
    exclude: list[str] = []
    values: dict[str, object] = {}
    for token in name.split():
        if token.startswith("@"):
            _setting(token, values)
        elif token.startswith("-") and len(token) > 1 and token[1].isalnum():
            exclude.append(token[1:])
        elif match := _FILTER.fullmatch(token):
            _filter(match.group(1).lower(), match.group(2), token, values)
        else:
            words.append(token)
    query = Query(text=" ".join(words), exclude=tuple(exclude), **values)  # type: ignore[arg-type]
    if not any(c.isalnum() for c in query.text) and not query.has_filters:
        raise QuerySyntaxError("a query needs at least one word (or a filter such as year:2023)")
    if query.sort == "score" and not query.text and "sort" not in values:
        query = replace(query, sort="date")  # filters alone: newest first
    return query


def _setting(token: str, values: dict[str, object]) -> None:
    name, has_value, value = token[1:].partition("=")
    if name not in SETTINGS:
        raise QuerySyntaxError(f"unknown modifier {token!r}; known: @k=N, @t=D, @sort=...")
    if not has_value or not value:
        raise QuerySyntaxError(f"{token!r} needs a value (@{name}=...)")
    if name in values or (name == "t" and "max_distance" in values):
        raise QuerySyntaxError(f"{token!r} is given twice")
    if name == "k":
        if not value.isdigit() or not 1 <= int(value) <= MAX_K:
            raise QuerySyntaxError(f"{token!r}: k must be a whole number from 1 to {MAX_K}")
        values["k"] = int(value)
    elif name == "t":
        try:
            cut = float(value)
        except ValueError:
            cut = -1.0
        if not 0.0 <= cut <= 2.0:
            raise QuerySyntaxError(f"{token!r}: t is an angular distance from 0 to 2")
        values["max_distance"] = cut
    else:
        if value not in SORTS:
            raise QuerySyntaxError(f"{token!r}: sort by one of {', '.join(SORTS)}")
        values["sort"] = value


def _filter(key: str, value: str, token: str, values: dict[str, object]) -> None:
    if key not in FILTERS:
        raise QuerySyntaxError(f"unknown filter {token!r}; known: year:, camera:, in:")
    if not value:
        raise QuerySyntaxError(f"{token!r} needs a value ({key}:...)")
    slot = {"year": "years", "camera": "camera", "in": "folder"}[key]
    if slot in values:
        raise QuerySyntaxError(f"{key}: is given twice")
    if key == "year":
        match = _YEAR.fullmatch(value)
        if match is None:
            raise QuerySyntaxError(f"{token!r}: a year is 2023, or a range 2019-2021")
        first = int(match.group(1))
        last = int(match.group(2) or first)
        if last < first:
            raise QuerySyntaxError(f"{token!r}: the range runs backwards")
        values["years"] = (first, last)
    else:
        values[slot] = value.lower()


def format_query(query: Query) -> str:
    """The canonical name of a query: `parse_query(format_query(q)) == q`."""
    parts = [query.text] if query.text else []
    parts += [f"-{word}" for word in query.exclude]
    if query.k is not None:
        parts.append(f"@k={query.k}")
    if query.max_distance is not None:
        parts.append(f"@t={query.max_distance!r}")
    if query.sort != ("score" if query.text else "date"):
        parts.append(f"@sort={query.sort}")
    if query.years is not None:
        first, last = query.years
        parts.append(f"year:{first}" if first == last else f"year:{first}-{last}")
    if query.camera is not None:
        parts.append(f"camera:{query.camera}")
    if query.folder is not None:
        parts.append(f"in:{query.folder}")
    return " ".join(parts)


def split_example(name: str) -> tuple[str, Query]:
    """An example's name under `similar/`: the image it names, and the modifiers its last
    words give (k, cut, order, filters; no words). QuerySyntaxError for a modifier-shaped
    word with a bad value, such as `@k=0`."""
    values: dict[str, object] = {}
    while (match := _EXAMPLE_MODIFIER.fullmatch(name)) and match.group(1).strip():
        name = match.group(1)
        _example_modifier(match.group(2), values)
    return name.rstrip(), Query(**values)  # type: ignore[arg-type]


def parse_example_modifiers(text: str) -> Query:
    """Modifiers alone, for an example given otherwise (`semfs search --image PATH`)."""
    values: dict[str, object] = {}
    for token in text.split():
        if not re.match(_MODIFIER_START, token):
            raise QuerySyntaxError(
                f"{token!r}: an example takes only @k=, @t=, @sort=, year:, camera:, in:"
            )
        _example_modifier(token, values)
    return Query(**values)  # type: ignore[arg-type]


def _example_modifier(token: str, values: dict[str, object]) -> None:
    if token.startswith("@"):
        _setting(token, values)
    else:
        key, _, value = token.partition(":")
        _filter(key.lower(), value, token, values)
