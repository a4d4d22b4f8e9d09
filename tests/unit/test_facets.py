"""Facets without a mount: colours, time of day and season, place, the query filters
they feed, and a catalog from before facets upgrading."""

from __future__ import annotations

import datetime
import io
import sqlite3
from pathlib import Path

import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from semfs.catalog.database import SCHEMA_VERSION, Catalog
from semfs.catalog.facet_tokens import slug, where_token
from semfs.catalog.records import Description
from semfs.catalog.schema import MIGRATIONS
from semfs.config import Settings
from semfs.errors import QuietError
from semfs.ingest.facets import (
    Facets,
    colour_phrase,
    compute_facets,
    part_of_day,
    season_of,
    with_facets,
)
from semfs.ml.colours import dominant_colours
from semfs.ml.imaging import PhotoFacts, decode, read_facts
from semfs.ml.places import Place, gazetteer
from semfs.search.query import QuerySyntaxError, format_query, parse_query, split_example
from semfs.search.searcher import Hit, matches_filters, time_range_ns


def _flag() -> Image.Image:
    """Two thirds red, one third white."""
    image = Image.new("RGB", (90, 60), (210, 20, 30))
    image.paste((255, 255, 255), (60, 0, 90, 60))
    return image


def test_dominant_colours_are_named_most_first() -> None:
    assert dominant_colours(_flag()) == ["red", "white"]
    assert dominant_colours(Image.new("RGB", (10, 10), (20, 60, 200))) == ["blue"]
    assert dominant_colours(Image.new("RGB", (10, 10), (120, 70, 30))) == ["brown"]
    assert dominant_colours(Image.new("L", (10, 10), 128)) == ["grey"]
    assert colour_phrase(("red", "white", "grey")) == "mostly red, white and grey"


@pytest.mark.parametrize("mode", ["L", "1", "P", "CMYK", "RGBA", "I;16", "LA"])
def test_colours_of_any_image_mode_through_decode(mode: str) -> None:
    data = io.BytesIO()
    image = _flag().convert(mode) if mode != "I;16" else Image.new("I;16", (30, 20), 40000)
    image.save(data, "TIFF" if mode in ("CMYK", "I;16") else "PNG")
    data.seek(0)
    decoded = decode(data, 10**8, 10**8)
    assert dominant_colours(decoded.image)  # some colour, never an error


def test_part_of_day_and_season() -> None:
    assert [part_of_day(h) for h in (0, 4, 5, 11, 12, 16, 17, 21, 22, 23)] == [
        "night", "night", "morning", "morning", "afternoon", "afternoon", "evening",
        "evening", "night", "night",
    ]  # fmt: skip
    assert season_of(7, 41.9) == "summer" and season_of(7, -33.9) == "winter"
    assert season_of(1, 59.3) == "winter" and season_of(10, -34.6) == "spring"
    assert season_of(7, 1.35) is None  # between the tropics


def _settings(tmp_path: Path, **overrides: str) -> Settings:
    return Settings(store=tmp_path, **overrides)  # type: ignore[arg-type]


def test_facets_become_words_keywords_and_tokens(tmp_path: Path) -> None:
    rome = Place("Rome", "Italy", "IT", 1.0)
    facets = Facets(("red", "white"), "night", "summer", rome)
    base = Description("a fire engine", "model", "classifier", ["fire engine", "truck"])
    described = with_facets(base, facets, _settings(tmp_path, facet_colours="caption"))
    assert described.caption == (
        "a fire engine, mostly red and white, at night in summer, in Rome, Italy"
    )
    assert described.keywords == ["fire engine", "truck", "red", "white", "night", "summer",
                                  "rome", "italy"]  # fmt: skip
    assert set(described.facets) >= {"colour:red", "time:night", "season:summer",
                                     "place:rome", "place:italy", "where:Italy/Rome"}  # fmt: skip
    # tags: keywords and filters, no words in the caption; a person's caption keeps its own
    quiet = _settings(tmp_path, facet_colours="tags", facet_time="tags", facet_place="tags")
    assert with_facets(base, facets, quiet).caption == "a fire engine"
    users = Description("grandma", "user", "user", [])
    assert with_facets(users, facets, _settings(tmp_path)).caption == "grandma"
    with pytest.raises(QuietError, match="facet_time"):
        _settings(tmp_path, facet_time="sometimes")


def test_compute_facets_off_computes_nothing(tmp_path: Path) -> None:
    facts = PhotoFacts(taken_ns=int(datetime.datetime(2024, 7, 14, 23, 30,
                                                      tzinfo=datetime.UTC).timestamp()) * 10**9,
                       position=(41.9, 12.5))  # fmt: skip
    on = compute_facets(_settings(tmp_path), _flag(), facts)
    assert (on.colours, on.period, on.season) == (("red", "white"), "night", "summer")
    assert on.place is not None and on.place.city == "Rome"
    assert on.people is not None and on.people.count == 0  # a flag has no face
    off = _settings(tmp_path, facet_colours="off", facet_time="off", facet_place="off",
                    facet_people="off")  # fmt: skip
    assert compute_facets(off, _flag(), facts) == Facets()


@pytest.mark.parametrize(
    ("position", "city", "country"),
    [((41.9028, 12.4964), "Rome", "Italy"), ((52.52, 13.405), "Berlin", "Germany"),
     ((47.5596, 7.5886), "Basel", "Switzerland"),  # 2 km from France and Germany
     ((48.5734, 7.7521), "Strasbourg", "France"), ((-33.8688, 151.2093), "Sydney", "Australia")],
)  # fmt: skip
def test_places_of_known_positions(position: tuple[float, float], city: str, country: str) -> None:
    place = gazetteer().lookup(*position)
    assert place is not None and (place.city, place.country) == (city, country)


def test_no_place_at_sea_or_out_of_range() -> None:
    assert gazetteer().lookup(41.0, 11.5) is None  # the Tyrrhenian sea, 100 km off Rome
    assert gazetteer().lookup(40.0, -40.0) is None  # mid-Atlantic
    assert gazetteer().lookup(95.0, 12.0) is None


def _jpeg_with_exif(exif: Image.Exif) -> io.BytesIO:
    data = io.BytesIO()
    Image.new("RGB", (8, 8)).save(data, "JPEG", exif=exif)
    data.seek(0)
    return data


def test_gps_position_read_from_exif() -> None:
    exif = Image.Exif()
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "S", (33.0, 52.0, 7.68), "E", (151.0, 12.0, 33.48)
    facts = read_facts(_jpeg_with_exif(exif))
    assert facts.position is not None
    assert facts.position == pytest.approx((-33.8688, 151.2093), abs=1e-4)
    for latitude in ((123.0, 0.0, 0.0), (IFDRational(1, 0), 0.0, 0.0), (1.0, 2.0)):
        broken = Image.Exif()  # out of range, a zero denominator, two parts of three
        broken.get_ifd(0x8825)[2], broken.get_ifd(0x8825)[4] = latitude, (12.0, 0.0, 0.0)
        assert read_facts(_jpeg_with_exif(broken)).position is None


def test_query_filters_parse_and_format() -> None:
    query = parse_query(
        "flower color:gray colour:Red place:New_York month:july date:2024-07..2024-08"
    )
    assert query.facets == ("colour:grey", "colour:red", "place:new-york")
    assert query.month == 7
    assert query.dates == (datetime.date(2024, 7, 1), datetime.date(2024, 8, 31))
    assert parse_query(format_query(query)) == query
    assert parse_query("date:2024-07-14").dates == (datetime.date(2024, 7, 14),) * 2
    assert parse_query("month:12").month == 12 and parse_query("place:rome").has_filters
    for bad in ("colour:mauve", "month:13", "month:juli", "date:2024-13", "date:2024-08..2024-07",
                "date:yesterday", "place:--"):  # fmt: skip
        with pytest.raises(QuerySyntaxError):
            parse_query(bad)


def test_filters_on_hits() -> None:
    night = int(datetime.datetime(2024, 7, 14, 23, 30, tzinfo=datetime.UTC).timestamp()) * 10**9
    hit = Hit(1, b"a.jpg", 0.1, "", time_ns=night, facets=frozenset({"colour:red", "place:rome"}))

    def keeps(name: str) -> bool:
        query = parse_query(name)
        return matches_filters(hit, time_range_ns(query), query.camera, query.folder,
                               query.month, query.facets)  # fmt: skip

    assert keeps("colour:red place:rome month:7 date:2024-07-14 year:2024")
    assert not keeps("colour:blue") and not keeps("month:8") and not keeps("date:2024-07-15")
    assert not keeps("year:2024 date:2023")  # the two ranges do not meet


def test_a_catalog_from_before_facets_upgrades(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    with sqlite3.connect(path) as db:
        for step in MIGRATIONS[:5]:
            step(db)
        db.execute("PRAGMA user_version = 5")
        db.execute("INSERT INTO files (id, dir, name, size, mtime_ns, state) "
                   "VALUES (1, x'', x'612e6a7067', 1, 1, 'indexed')")  # fmt: skip
        db.execute("INSERT INTO descriptions (file_id, caption, source, captioner, keywords) "
                   "VALUES (1, 'a cat', 'model', 'c', '[\"cat\"]')")  # fmt: skip
        db.execute("DELETE FROM meta WHERE key = 'facts_backfilled_to'")
    catalog = Catalog.open(path)
    assert catalog.schema_version == SCHEMA_VERSION >= 6
    assert catalog.get_meta("facts_backfilled_to") == "0"  # EXIF read again when idle
    tokens = ["place:rome", where_token("Italy", "Rome")]
    catalog.queue.set_facts([(1, None, None, tokens)], done_to=0)
    assert catalog.reads.token_counts("where:") == [("where:Italy/Rome", 1)]
    catalog.queue.set_facts([(1, None, None, ["place:paris"])], done_to=0)  # has some: kept
    assert catalog.reads.token_counts("place:") == [("place:rome", 1)]
    assert slug("Reykjavík") == "reykjavik" and slug("New York City") == "new-york-city"


def test_place_names_that_fail_to_load_are_tried_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from semfs.ml import places

    loads: list[int] = []

    def broken() -> None:
        loads.append(1)
        raise OSError("geocode.gz: no such file")

    monkeypatch.setattr(places, "_gazetteer", None)
    monkeypatch.setattr(places, "_failed", False)
    monkeypatch.setattr(places, "Gazetteer", broken)
    facts = PhotoFacts(taken_ns=0, position=(41.9, 12.5))
    for _ in range(3):
        facets = compute_facets(_settings(tmp_path), _flag(), facts)
        assert facets.place is None and facets.colours == ("red", "white")  # the rest stays
    assert len(loads) == 1 and caplog.text.count("place names cannot be loaded") == 1


def test_an_examples_name_ends_with_facet_filters() -> None:
    name, query = split_example("holiday photo.jpg colour:red place:rome month:7")
    assert name == "holiday photo.jpg" and query.month == 7
    assert set(query.facets) == {"colour:red", "place:rome"}
