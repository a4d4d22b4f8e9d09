"""The facts an image's facets leave in the catalog, as `key:value` tokens.

Ingest (semfs/ingest/facets.py) writes them, as a JSON list in `descriptions.facets`;
triggers copy them into the `facet_tokens` table (schema.py), which the query filters
(`colour:red`, `place:rome`) and the places/ view read through its index. A value is a
slug: lower case, accents dropped, words joined by "-" ("place:new-york-city"), so a
filter typed in a directory name (one word, no "/") can name it. The places/ view's
token keeps the names as they are written: `where:Italy/Rome`.

A new facet adds its key here (people: `people:2`, `people:none`), and its filter to
semfs/search/query.py's FACET_FILTERS.
"""

from __future__ import annotations

import re
import unicodedata

COLOUR = "colour"
PLACE = "place"  # city or country, slugged: place:rome, place:italy
WHERE = "where"  # the places/ view: where:<country>/<city>, names as written
TIME = "time"  # night | morning | afternoon | evening
SEASON = "season"  # winter | spring | summer | autumn
WHERE_SEPARATOR = "/"


def slug(text: str) -> str:
    """'Reykjavík' -> 'reykjavik'; 'New York City' -> 'new-york-city'."""
    plain = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in plain if not unicodedata.combining(c)).lower()
    return "-".join(re.findall(r"[^\W_]+", plain))


def token(key: str, value: str) -> str:
    return f"{key}:{slug(value)}"


def where_token(country: str, city: str) -> str:
    """The places/ view's token; names keep their case, lose any "/"."""
    parts = (" ".join(name.replace(WHERE_SEPARATOR, " ").split()) for name in (country, city))
    return f"{WHERE}:" + WHERE_SEPARATOR.join(parts)
