"""The facts an image's facets leave in the catalog, as `key:value` tokens.

Ingest (semfs/ingest/facets.py) writes them, as a JSON list in `descriptions.facets`;
triggers copy them into the `facet_tokens` table (schema.py), which the query filters
(`colour:red`, `place:rome`) and the places/ view read through its index. A value is a
slug: lower case, accents dropped, words joined by "-" ("place:new-york-city"), so a
filter typed in a directory name (one word, no "/") can name it. The places/ view's
token keeps the names as they are written: `where:Italy/Rome`.

A new facet adds its key here (as people did: `people:2`, `people:2+`, `people:none`),
and its filter to semfs/search/query.py's FACET_FILTERS.
"""

from __future__ import annotations

import re
import unicodedata

COLOUR = "colour"
PLACE = "place"  # city or country, slugged: place:rome, place:italy
WHERE = "where"  # the places/ view: where:<country>/<city>, names as written
TIME = "time"  # night | morning | afternoon | evening
SEASON = "season"  # winter | spring | summer | autumn
PEOPLE = "people"  # people:none, people:N (faces found), people:K+ for 1 <= K <= N, K <= 5
PEOPLE_NONE = "none"
PEOPLE_AT_LEAST = range(1, 6)  # the K of people:K+ stored (people:6+ is not a filter)
WHERE_SEPARATOR = "/"


def slug(text: str) -> str:
    """'Reykjavík' -> 'reykjavik'; 'New York City' -> 'new-york-city'."""
    plain = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in plain if not unicodedata.combining(c)).lower()
    return "-".join(re.findall(r"[^\W_]+", plain))


def token(key: str, value: str) -> str:
    return f"{key}:{slug(value)}"


def people_tokens(count: int) -> list[str]:
    """people:none; people:1, people:1+; people:3, people:1+, people:2+, people:3+."""
    if count <= 0:
        return [f"{PEOPLE}:{PEOPLE_NONE}"]
    at_least = [f"{PEOPLE}:{k}+" for k in PEOPLE_AT_LEAST if k <= count]
    return [f"{PEOPLE}:{count}", *at_least]


def where_token(country: str, city: str) -> str:
    """The places/ view's token; names keep their case, lose any "/"."""
    parts = (" ".join(name.replace(WHERE_SEPARATOR, " ").split()) for name in (country, city))
    return f"{WHERE}:" + WHERE_SEPARATOR.join(parts)
