"""Queries with modifiers: what a directory name under `search/` asks for.

    beach -people @k=20 @t=0.9 @sort=date year:2023 camera:canon in:holiday

Words are the text searched for by meaning. Beside them, each a word of its own:

- `-word` leaves out images that are results for `word` (their caption is within the
  relevance cut of it, or names it);
- `@k=N` lists at most N results; `@t=D` sets the relevance cut (angular distance, 0..2);
  `@sort=score|date|oldest|name|size` orders them (best match, newest or oldest photo
  first, by file name, largest first);
- `year:2023` or `year:2019-2021` (when the photo was taken, from EXIF, else the file's
  time), `month:7` or `month:july`, `date:2024-07-14` or `date:2024-07..2024-08` (a
  day, month or year, or a range of them, inclusive), `camera:canon` (EXIF make and
  model contain it), `in:holiday` (a folder on the image's path contains it) keep only
  the images that match;
- facet filters (docs/facets.md): `colour:red` (or `color:`; a dominant colour, one of
  the palette; several must all hold), `place:rome` (the city or country of its GPS
  position; words joined by "-": `place:new-york-city`), `people:2` (faces found:
  exactly two), `people:2+` (two or more; `people:1+` to `people:5+`), `people:none` (no face
  found).

A name with filters and no words lists the matching images themselves (newest first).
Every modifier is valid in a file name (no `/`); an unknown one is an error that names
it, so a typo is never silently searched for as text.

Under `similar/` the name is an image's name, which may hold any word, so only its last
words are read as modifiers, and only those shaped like one: `@k=`, `@t=`, `@sort=`,
`year:`, `month:`, `date:`, `camera:`, `in:`, `colour:`, `place:`, `people:`
(`split_example`).
`-word` stays part of the name there.
"""

from __future__ import annotations

import calendar
import datetime
import re
from dataclasses import dataclass, replace

from semfs.catalog import facet_tokens as ft
from semfs.ml.colours import PALETTE

SORTS = ("score", "date", "oldest", "name", "size")
SETTINGS = ("k", "t", "sort")
FILTERS = ("year", "month", "date", "camera", "in", "colour", "color", "place", "people")
FACET_FILTERS = {"colour": ft.COLOUR, "color": ft.COLOUR, "place": ft.PLACE,
                 "people": ft.PEOPLE}  # -> token key  # fmt: skip
MAX_K = 1000
_YEAR = re.compile(r"(\d{4})(?:-(\d{4}))?")
_DATE = re.compile(r"(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?")
_MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_name) if name}
_MONTHS.update({name.lower(): number for number, name in enumerate(calendar.month_abbr) if name})
_COLOUR_ALIASES = {"gray": "grey", "violet": "purple"}
# `key:value` is a filter only when key is a word of letters; "16:9" stays text.
_FILTER = re.compile(r"([A-Za-z]+):(.*)")
# What an example's modifiers start with; the last word of its name, if it does.
_MODIFIER_START = r"@(?:k|t|sort)=|(?i:year|month|date|camera|in|colou?r|place|people):"
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
    month: int | None = None  # 1-12
    dates: tuple[datetime.date, datetime.date] | None = None  # inclusive
    facets: tuple[str, ...] = ()  # facet tokens the image must all have (colour:red)

    @property
    def has_filters(self) -> bool:
        given = (self.years, self.camera, self.folder, self.month, self.dates)
        return any(v is not None for v in given) or bool(self.facets)


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
        raise QuerySyntaxError(
            f"unknown filter {token!r}; known: year:, month:, date:, camera:, in:, colour:,"
            " place:, people:"
        )
    if not value:
        raise QuerySyntaxError(f"{token!r} needs a value ({key}:...)")
    if key in FACET_FILTERS:
        facets = values.setdefault("facets", ())
        assert isinstance(facets, tuple)
        values["facets"] = (*facets, _facet_token(key, value, token))
        return
    slot = {"year": "years", "camera": "camera", "in": "folder", "month": "month",
            "date": "dates"}[key]  # fmt: skip
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
    elif key == "month":
        values["month"] = _month(value, token)
    elif key == "date":
        values["dates"] = _dates(value, token)
    else:
        values[slot] = value.lower()


def _facet_token(key: str, value: str, token: str) -> str:
    if FACET_FILTERS[key] == ft.COLOUR:
        colour = _COLOUR_ALIASES.get(value.lower(), value.lower())
        if colour not in PALETTE:
            raise QuerySyntaxError(f"{token!r}: a colour is one of {', '.join(PALETTE)}")
        return ft.token(ft.COLOUR, colour)
    if FACET_FILTERS[key] == ft.PEOPLE:
        return _people_token(value, token)
    place = ft.slug(value)
    if not place:
        raise QuerySyntaxError(f"{token!r}: a place is a city or country, e.g. place:rome")
    return f"{ft.PLACE}:{place}"


def _people_token(value: str, token: str) -> str:
    """people:none, people:2, people:2+ (1+ to 5+) -> the token stored (facet_tokens.py)."""
    value = value.lower()
    if value in (ft.PEOPLE_NONE, "0"):
        return f"{ft.PEOPLE}:{ft.PEOPLE_NONE}"
    number, plus = value.removesuffix("+"), value.endswith("+")
    if number.isdigit() and int(number) > 0:
        count = int(number)
        if not plus:
            return f"{ft.PEOPLE}:{count}"
        if count in ft.PEOPLE_AT_LEAST:
            return f"{ft.PEOPLE}:{count}+"
    raise QuerySyntaxError(
        f"{token!r}: people:N (faces found), people:1+ to people:5+, or people:none"
    )


def _month(value: str, token: str) -> int:
    number = int(value) if value.isdigit() else _MONTHS.get(value.lower(), 0)
    if not 1 <= number <= 12:
        raise QuerySyntaxError(f"{token!r}: a month is 1-12 or its name (month:july)")
    return number


def _dates(value: str, token: str) -> tuple[datetime.date, datetime.date]:
    """`2024-07-14`, `2024-07` or `2024`, or two of them joined by `..`: first and last day."""
    start, dots, end = value.partition("..")
    first = _date_span(start, token)[0]
    last = _date_span(end if dots else start, token)[1]
    if last < first:
        raise QuerySyntaxError(f"{token!r}: the range runs backwards")
    return first, last


def _date_span(text: str, token: str) -> tuple[datetime.date, datetime.date]:
    match = _DATE.fullmatch(text)
    try:
        if match is None:
            raise ValueError(text)
        year, month, day = (int(part) if part else None for part in match.groups())
        assert year is not None
        if month is None:
            return datetime.date(year, 1, 1), datetime.date(year, 12, 31)
        if day is None:
            last_day = calendar.monthrange(year, month)[1]
            return datetime.date(year, month, 1), datetime.date(year, month, last_day)
        return datetime.date(year, month, day), datetime.date(year, month, day)
    except ValueError:
        raise QuerySyntaxError(
            f"{token!r}: a date is 2024-07-14, 2024-07 or 2024, or a range 2024-07..2024-08"
        ) from None


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
    if query.month is not None:
        parts.append(f"month:{query.month}")
    if query.dates is not None:
        start, end = (day.isoformat() for day in query.dates)
        parts.append(f"date:{start}" if start == end else f"date:{start}..{end}")
    if query.camera is not None:
        parts.append(f"camera:{query.camera}")
    if query.folder is not None:
        parts.append(f"in:{query.folder}")
    parts += query.facets  # colour:red, place:rome: each is its own filter's syntax
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
                f"{token!r}: an example takes only @k=, @t=, @sort= and filters (year:, ...)"
            )
        _example_modifier(token, values)
    return Query(**values)  # type: ignore[arg-type]


def _example_modifier(token: str, values: dict[str, object]) -> None:
    if token.startswith("@"):
        _setting(token, values)
    else:
        key, _, value = token.partition(":")
        _filter(key.lower(), value, token, values)
