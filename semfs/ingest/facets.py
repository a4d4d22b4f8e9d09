"""An image's facets: what a photo shows or carries beyond the captioner's words, each
from a cheap source of its own, and what each becomes.

- colours: the dominant palette colours of the decoded pixels (ml/colours.py);
- time: the time of day from the EXIF capture time, and the season where the place
  (so the hemisphere) is known;
- place: the city and country of the EXIF GPS position (ml/places.py);
- people: frontal faces found by OpenCV's cascade at 320 pixels (ml/people.py).
Text read in the image (OCR) is slow, so it is not here: the idle pass adds it
(ingest/texts.py).

This module is the one place where facets become the three things they feed:
  1. words added to the model's caption, which SBERT embeds ("mostly red and white,
     at night, in Rome, Italy");
  2. keywords, listed under tags/ ("red", "night", "rome", "italy");
  3. facts for the query filters and views, `key:value` tokens stored with the
     description (catalog/facet_tokens.py): colour:red, place:rome, where:Italy/Rome.
A facet set to "tags" in the settings gives 2 and 3 but no caption words; "off" skips
it (nothing is computed). A facet that fails is logged and left out: it never stops
the image's ingest. A new facet adds a field to `Facets`, its lines in
`phrases`, `keywords` and `tokens`, and its computation in `compute_facets`.
"""

from __future__ import annotations

import datetime
import logging
import threading
from dataclasses import dataclass, replace

from PIL import Image

from semfs.catalog import facet_tokens as ft
from semfs.catalog.records import Description
from semfs.config import Settings
from semfs.errors import ModelError
from semfs.ml.colours import dominant_colours
from semfs.ml.imaging import PhotoFacts
from semfs.ml.people import People, PeopleDetector, people_keyword, people_words
from semfs.ml.places import Place, PlaceNamesUnavailable, gazetteer

log = logging.getLogger(__name__)

TROPICS = 23.44  # degrees of latitude: no four seasons between the tropics

# Hours of the local day (EXIF times are local wall-clock time) -> its part.
_PERIODS = ((5, "night"), (12, "morning"), (17, "afternoon"), (22, "evening"), (24, "night"))
_PERIOD_WORDS = {"night": "at night", "morning": "in the morning",
                 "afternoon": "in the afternoon", "evening": "in the evening"}  # fmt: skip
# Northern-hemisphere season of each month (1-12); the south's is six months on.
# At 320 pixels the cascade costs 11-13 ms of CPU an image (steps of 1.3, ml/people.py)
# against 27-33 ms with steps of 1.1, and 52 at 384 (docs/facets.md, "People").
PEOPLE_SIDE = 320
_SEASONS = ("winter", "winter", "spring", "spring", "spring", "summer", "summer", "summer",
            "autumn", "autumn", "autumn", "winter")  # fmt: skip


@dataclass(frozen=True)
class Facets:
    colours: tuple[str, ...] = ()  # most first
    period: str | None = None  # night | morning | afternoon | evening
    season: str | None = None
    place: Place | None = None
    people: People | None = None  # None: not looked for (off, or no pixels)


_detector: PeopleDetector | None = None
_detector_lock = threading.Lock()
_detector_failed = False


def people_detector() -> PeopleDetector | None:
    """The process's detector, made on first use; None (said once) if OpenCV is missing."""
    global _detector, _detector_failed
    with _detector_lock:
        if _detector is None and not _detector_failed:
            try:
                _detector = PeopleDetector(side=PEOPLE_SIDE)
            except ModelError as error:
                _detector_failed = True
                log.error("people not detected: %s", error)
        return _detector


def compute_facets(settings: Settings, image: Image.Image | None, facts: PhotoFacts) -> Facets:
    """The facets the settings ask for, of a decoded image (None: not decoded, so no
    colours) and its EXIF facts. Blocking (the first place looked up loads the place
    names, about 1 s): call in an ingest thread."""
    colours: tuple[str, ...] = ()
    if image is not None and settings.facet_colours != "off":
        try:
            colours = tuple(dominant_colours(image))
        except Exception:  # an odd image mode or size: no colours, the image goes on
            log.exception("colours not computed")
    place = None
    if facts.position is not None and settings.facet_place != "off":
        try:
            place = gazetteer().lookup(*facts.position)
        except PlaceNamesUnavailable:
            pass  # said once, when they failed to load
        except Exception:
            log.exception("place not looked up for %s", facts.position)
    people = None
    if image is not None and settings.facet_people != "off":
        try:
            if (detector := people_detector()) is not None:
                people = detector.detect(image)
        except Exception:
            log.exception("people not detected")
    period = season = None
    if facts.taken_ns is not None and settings.facet_time != "off":
        local = datetime.datetime.fromtimestamp(facts.taken_ns / 1e9, datetime.UTC)
        period = part_of_day(local.hour)
        if facts.position is not None:
            season = season_of(local.month, facts.position[0])
    return Facets(colours, period, season, place, people)


def part_of_day(hour: int) -> str:
    return next(name for end, name in _PERIODS if hour < end)


def season_of(month: int, latitude: float) -> str | None:
    """The season in that month at that latitude; None between the tropics."""
    if abs(latitude) < TROPICS:
        return None
    return _SEASONS[(month - 1 + (6 if latitude < 0 else 0)) % 12]


def colour_phrase(colours: tuple[str, ...]) -> str | None:
    """("red",) -> "mostly red"; ("red", "white", "grey") -> "mostly red, white and grey"."""
    if not colours:
        return None
    names = list(colours)
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"mostly {listed}"


def phrases(facets: Facets, settings: Settings) -> list[str]:
    """The words the facets add to a caption (those set to "caption")."""
    words: list[str] = []
    if settings.facet_colours == "caption" and (colour := colour_phrase(facets.colours)):
        words.append(colour)
    if settings.facet_time == "caption":
        time = " ".join(
            part for part in (_PERIOD_WORDS.get(facets.period or ""),
                              f"in {facets.season}" if facets.season else None) if part
        )  # fmt: skip
        if time:
            words.append(time)
    if settings.facet_place == "caption" and facets.place is not None:
        words.append(f"in {facets.place.city}, {facets.place.country}")
    people = people_words(facets.people) if facets.people is not None else None
    if settings.facet_people == "caption" and people:
        words.append(people)
    return words


def keywords(facets: Facets) -> list[str]:
    """The facets' keywords for tags/ (every facet that is not off)."""
    words = list(facets.colours)
    words += [word for word in (facets.period, facets.season) if word]
    if facets.place is not None:
        words += [facets.place.city.lower(), facets.place.country.lower()]
    if facets.people is not None and (person := people_keyword(facets.people)):
        words.append(person)
    return words


def tokens(facets: Facets) -> list[str]:
    """The facts the query filters and views read (catalog/facet_tokens.py)."""
    found = [ft.token(ft.COLOUR, colour) for colour in facets.colours]
    if facets.period:
        found.append(ft.token(ft.TIME, facets.period))
    if facets.season:
        found.append(ft.token(ft.SEASON, facets.season))
    if facets.place is not None:
        found += [ft.token(ft.PLACE, facets.place.city), ft.token(ft.PLACE, facets.place.country),
                  ft.where_token(facets.place.country, facets.place.city)]  # fmt: skip
    if facets.people is not None:
        found += ft.people_tokens(facets.people.count)
    return list(dict.fromkeys(found))


def with_facets(description: Description, facets: Facets, settings: Settings) -> Description:
    """The description with its facets: words added to a model's caption (a caption a
    person set is left as written), keywords after the caption's own, and the facts."""
    caption = description.caption
    words = phrases(facets, settings)
    if words and description.source != "user":
        caption = ", ".join([caption.rstrip(" .,"), *words])
    tags = list(dict.fromkeys([*description.keywords, *keywords(facets)]))
    return replace(description, caption=caption, keywords=tags, facets=tokens(facets))
