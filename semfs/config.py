"""Settings of one store: defaults, overridden by STORE/.semfs/config.toml."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
import textwrap
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semfs.errors import QuietError

STATE_DIR_NAME = ".semfs"
FSTYPE = "fuse.semfs"  # how /proc/self/mountinfo names a semfs mount
# The caption xattr: set by a person on an image (it wins over the model's), and shown on
# every search result.
CAPTION_XATTR = b"user.semfs.caption"
# Read-only xattrs of the mount's root, answered by the daemon for `semfs status` and
# `semfs config` (other processes): the last warnings and errors it logged, and the
# settings it runs with, each with its source.
ERRORS_XATTR = b"user.semfs.errors"
SETTINGS_XATTR = b"user.semfs.settings"

DEFAULT_IMAGE_EXTENSIONS = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp",
        ".heic", ".heif", ".avif", ".jxl", ".ppm", ".pgm", ".pbm", ".ico",
    }
)  # fmt: skip

RESULT_NAMES = ("ranked", "plain")  # the values of the result_names setting
RELEVANCE_CUTS = ("nouns", "fixed")  # the values of the relevance_cut setting
# What a facet (docs/facets.md) gives: words in the caption, keywords and filters; only
# keywords and filters; nothing (not computed).
FACET_MODES = ("caption", "tags", "off")
INDEX_ENGINES = ("auto", "ivf", "annoy")  # the values of the index_engine setting
QUERY_ENCODERS = ("float", "int8")  # the values of the query_encoder setting

# What a profile changes of the defaults. low-memory: the storage design's small-device
# set-up (an SSD's ARM cores); docs/low-memory.md has what it costs and saves.
PROFILES: dict[str, dict[str, Any]] = {
    "default": {},
    "low-memory": {
        "embedder": "onnx:paraphrase-MiniLM-L3-v2-int8",
        "ingest_workers": 1,
        "ingest_batch": 2,
        "io_threads": 2,
        "rebuild_threshold": 500,
        "query_cache": 64,
        "release_captioner_after": 30.0,
        "facet_place": "off",  # the place names' load peaks at ~125 MB (docs/facets.md)
        "facet_people": "off",  # OpenCV's detector: +47 MB and ~35 ms of CPU an image
        "facet_text": "off",  # Tesseract and its word list: +44 MB, ~200 ms an image read
    },
}


def setting(default: Any, doc: str) -> Any:
    """A setting with the one line of documentation config.toml's template shows."""
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class Settings:
    """Everything a mount needs to know; one instance per store."""

    store: Path
    profile: str = setting(
        "default",
        "a bundle of defaults: default, or low-memory (small devices: the small ONNX"
        " embedder, one ingest thread, small batches and caches); settings given here or"
        " on the command line still win",
    )
    # --- the mount ----------------------------------------------------------------------
    entry_timeout: float = setting(
        5.0,
        "seconds the kernel caches names: changes made directly in the store while mounted"
        " show up after this (changes made through the mount: at once)",
    )
    attr_timeout: float = setting(5.0, "seconds the kernel caches sizes and times, likewise")
    io_threads: int = setting(
        8, "threads for file I/O and hashing (the trio thread never waits on disk)"
    )
    image_extensions: frozenset[str] = setting(
        DEFAULT_IMAGE_EXTENSIONS, "which files are images (case-insensitive)"
    )
    allow_other: bool = setting(
        False, "let users other than the one mounting in (each file's permissions apply)"
    )
    writeback_cache: bool = setting(
        False,
        "kernel write cache: a 100 MiB cp 1.4x faster, but data written and not yet closed"
        " is lost if the daemon dies (docs/benchmarks-passthrough.md)",
    )
    posix_acl: bool = setting(
        True,
        "the kernel enforces the store's POSIX ACLs (setfacl) for every user of the mount;"
        " off: mode bits only, so an ACL that denies a user is ignored (docs/architecture.md)",
    )
    log_max_bytes: int = setting(10_000_000, "mount.log is rotated at this size")
    log_backups: int = setting(3, "rotated logs kept (mount.log.1 ...)")
    # --- search ---------------------------------------------------------------------------
    captioner: str = setting(
        "classifier:efficientnet-lite0",
        "classifier[:efficientnet-lite0|1|2][+wide+gloss+plain+crops] (offline) or"
        " transformers:<hub id or directory>, e.g. Salesforce/blip-image-captioning-base",
    )
    embedder: str = setting(
        "sentence-transformers:all-MiniLM-L6-v2",
        "sentence-transformers:<name or directory>, or onnx:paraphrase-MiniLM-L3-v2 (low memory);"
        " unset: a store keeps the embedder its vectors were made with (changing it re-embeds"
        " them all)",
    )
    query_encoder: str = setting(
        "float",
        "float (the embedder itself) or int8: queries encoded by an int8 copy of an ONNX"
        " embedder, in under half the time; with all-MiniLM-L6-v2 its top 10 differed in"
        " about 1 place in 15 (docs/evaluation.md)",
    )
    search_dir_name: str = setting("search", "the name of the search directory at the mount's root")
    tags_dir_name: str = setting("tags", "the name of the tags directory at the mount's root")
    similar_dir_name: str = setting(
        "similar", "the name of the search-by-example directory at the mount's root"
    )
    places_dir_name: str = setting(
        "places", "the name of the places directory (places/<country>/<city>/) at the mount's root"
    )
    # Facets (docs/facets.md): each is caption (words added to the caption, keywords,
    # filter), tags (keywords and filter only) or off.
    facet_colours: str = setting(
        "tags",
        "dominant colours (colour:red): caption, tags (keywords and filter only; the default,"
        " docs/facets.md says why) or off",
    )
    facet_time: str = setting(
        "caption",
        "time of day from EXIF (at night, in the evening; the season where GPS says the"
        " hemisphere): caption, tags or off",
    )
    facet_place: str = setting(
        "caption",
        "place from EXIF GPS, offline (in Rome, Italy; place:rome, places/): caption, tags or off",
    )
    facet_people: str = setting(
        "caption",
        "people from faces (a person, two people, a group of people; people:2, people:none,"
        " tags/people/): caption, tags or off",
    )
    facet_text: str = setting(
        "caption",
        "words read in the image (OCR, in the idle pass; user.semfs.text): caption, tags"
        " (stored and shown, keywords, not in the caption) or off",
    )
    image_features: str = setting(
        "efficientnet-lite0",
        "the network whose pooled features find similar images (efficientnet-lite0|1|2;"
        " empty: no search by example)",
    )
    image_feature_dimensions: int = setting(
        256,
        "image features kept per image: the network's 1,280 reduced to this many (a fifth"
        " of the disk at 256); 1280: kept whole",
    )
    top_k: int = setting(50, "results listed per query, best first")
    result_names: str = setting(
        "ranked",
        "names of results in search/ and similar/: ranked, behind their rank (01 cat.png:"
        " a listing sorted by name shows the best first), or plain (cat.png)",
    )
    relevance_cut: str = setting(
        "nouns",
        "how search/ decides what to list: nouns (per query, from the things it names:"
        " nothing for a thing no photo carries, a broad word's photos first; offline"
        " captioner only) or fixed (max_distance for every query)",
    )
    # Angular distance (0 = same direction, 2 = opposite) above which a result is cut.
    max_distance: float | None = setting(
        None,
        "relevance cut, as angular distance (0 same meaning .. 2 opposite); unset: the value"
        " calibrated for the captioner and embedder (docs/evaluation.md)",
    )
    example_max_distance: float | None = setting(
        None,
        "relevance cut of search by example, as angular distance of image features; unset:"
        " the value calibrated for image_features (docs/search-by-example.md; 2: no cut)",
    )
    ingest_workers: int = setting(2, "threads that read and decode images for the models")
    ingest_batch: int = setting(8, "images ingest takes at a time (the captioner, 2 per call)")
    torch_threads: int = setting(0, "torch's threads, for models that run on torch (0: its choice)")
    # Cameras reach 100-240 Mpx (11648x8736, 14204x10652; pixel-shift composites): a
    # baseline JPEG is decoded at 1/8 size, so they cost time, not memory.
    max_image_pixels: int = setting(
        250_000_000, "larger images are refused as decompression bombs (900 Mpx is one)"
    )
    # The rest are decoded whole: 100 Mpx (the old limit of every image) is 400 MB a
    # decode (800 with transparency), per ingest worker.
    max_full_decode_pixels: int = setting(
        100_000_000,
        "larger images that must be decoded whole are refused: PNG, WebP, TIFF, progressive"
        " JPEG (4-8 bytes a pixel in memory; baseline JPEGs are decoded reduced)",
    )
    index_engine: str = setting(
        "auto",
        "base index: auto (exact scan below 80,000 vectors, FAISS IVF above), ivf, or annoy"
        " (docs/benchmarks-search-sweep.md)",
    )
    index_nprobe: int = setting(
        16, "FAISS IVF lists scanned per query, at least 0.8 % of them (32 at 1 M images)"
    )
    index_trees: int = setting(25, "Annoy trees of the base index")
    index_search_k: int = setting(
        10_000, "Annoy nodes inspected per query (recall against time; docs/benchmarks-search.md)"
    )
    rebuild_threshold: int = setting(
        2_000, "new vectors searched exactly before the base index is rebuilt"
    )
    model_wait: float = setting(
        120.0, "seconds a search waits for the models after mounting before EAGAIN"
    )
    query_cache: int = setting(1024, "query vectors kept (a file manager repeats queries)")
    release_captioner_after: float = setting(
        0.0, "seconds of idle ingest after which the captioner's memory is let go (0: never)"
    )

    def __post_init__(self) -> None:
        if self.result_names not in RESULT_NAMES:
            raise QuietError(
                f"result_names = {self.result_names!r}: it is one of {', '.join(RESULT_NAMES)}"
            )
        if self.relevance_cut not in RELEVANCE_CUTS:
            raise QuietError(
                f"relevance_cut = {self.relevance_cut!r}: it is one of {', '.join(RELEVANCE_CUTS)}"
            )
        for name in ("facet_colours", "facet_time", "facet_place", "facet_people", "facet_text"):
            if getattr(self, name) not in FACET_MODES:
                raise QuietError(
                    f"{name} = {getattr(self, name)!r}: it is one of {', '.join(FACET_MODES)}"
                )
        if self.index_engine not in INDEX_ENGINES:
            raise QuietError(
                f"index_engine = {self.index_engine!r}: it is one of {', '.join(INDEX_ENGINES)}"
            )
        if self.query_encoder not in QUERY_ENCODERS:
            raise QuietError(
                f"query_encoder = {self.query_encoder!r}: it is one of {', '.join(QUERY_ENCODERS)}"
            )

    @property
    def state_dir(self) -> Path:
        return self.store / STATE_DIR_NAME

    def make_state_dir(self) -> Path:
        """Create the state directory, private to its owner: paths and captions of the
        photos are in it. An older, wider one is narrowed."""
        self.state_dir.mkdir(mode=0o700, exist_ok=True)
        if self.state_dir.stat().st_mode & 0o077:
            self.state_dir.chmod(0o700)
        return self.state_dir

    @property
    def catalog_path(self) -> Path:
        return self.state_dir / "catalog.sqlite3"

    @property
    def lock_path(self) -> Path:
        return self.state_dir / "mount.lock"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "mount.log"

    @property
    def index_dir(self) -> Path:
        return self.state_dir / "index"

    @property
    def image_index_dir(self) -> Path:
        return self.state_dir / "image-index"

    @property
    def uploads_dir(self) -> Path:
        """Examples copied into similar/ while they are written (never into the store)."""
        return self.state_dir / "uploads"

    @property
    def config_path(self) -> Path:
        return self.state_dir / "config.toml"

    def is_image_name(self, name: bytes | str) -> bool:
        """Whether a file name has one of the image extensions (case-insensitive)."""
        text = os.fsdecode(name).lower()
        dot = text.rfind(".")
        return dot > 0 and text[dot:] in self.image_extensions

    @classmethod
    def load(cls, store: str | os.PathLike[str], **overrides: Any) -> Settings:
        """Settings for `store`: defaults, then config.toml, then `overrides`."""
        return cls.load_with_sources(store, **overrides)[0]

    @classmethod
    def load_with_sources(
        cls, store: str | os.PathLike[str], **overrides: Any
    ) -> tuple[Settings, dict[str, str]]:
        """`load`, and where each setting's value came from: SOURCES, with `overrides`
        counted as mount options (what a mount is given, flags or `-o`, reaches its
        daemon as `-o`)."""
        if not os.fspath(store).strip():  # e.g. a unit whose SEMFS_STORE is not set
            raise QuietError("no store given (an empty path)")
        root = Path(store).resolve()
        if not root.is_dir():
            raise QuietError(f"store {root} is not a directory")
        config_file = root / STATE_DIR_NAME / "config.toml"
        from_file = _read_config(config_file) if config_file.is_file() else {}
        given = {k: v for k, v in overrides.items() if v is not None}
        values = {**from_file, **given}
        profile = values.get("profile", "default")
        if profile not in PROFILES:
            raise QuietError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
        sources = {f.name: "default" for f in dataclasses.fields(cls) if f.name != "store"}
        if "embedder" not in values and "embedder" not in PROFILES[profile]:
            kept = embedder_of_vectors(root / STATE_DIR_NAME / "catalog.sqlite3")
            if kept is not None:
                values["embedder"], sources["embedder"] = kept, "store"
        sources.update(dict.fromkeys(PROFILES[profile], "profile"))
        sources.update(dict.fromkeys(from_file, "config.toml"))
        sources.update(dict.fromkeys(given, "mount option"))
        return cls(store=root, **{**PROFILES[profile], **values}), sources


def embedder_of_vectors(catalog: Path) -> str | None:
    """The embedder of the newest vector in a store's catalog, or None (no catalog, no
    vectors, or unreadable). A store whose embedder is not set keeps this one: neither a
    new default nor dropping a one-off `--embedder` or `--profile` may re-embed every
    caption of a store (about an hour at 1 M images, with searches missing what is not
    yet done) without being asked."""
    if not catalog.is_file():
        return None
    try:
        uri = f"{catalog.as_uri()}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=1.0)) as db:
            row = db.execute("SELECT embedder FROM vectors ORDER BY seq DESC LIMIT 1").fetchone()
    except sqlite3.Error:  # a catalog from before vectors, or one another user owns
        return None
    return str(row[0]) if row else None


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise QuietError(f"cannot read {path}: {error}") from error
    known = {f.name for f in dataclasses.fields(Settings)} - {"store"}
    unknown = set(data) - known
    if unknown:
        raise QuietError(f"{path}: unknown settings {sorted(unknown)}; known: {sorted(known)}")
    if "image_extensions" in data:
        data["image_extensions"] = frozenset(e.lower() for e in data["image_extensions"])
    return data


def config_template() -> str:
    """config.toml as first written into a store: every setting, commented out at its
    default, with what it does. Uncomment a line to change it."""
    lines = [
        "# semfs settings for this store. Uncomment a line to change it; the values shown",
        "# are the defaults. Command-line flags and `-o name=value` mount options win over",
        "# this file. `semfs config STORE` shows what is in effect.",
        "",
    ]
    for setting_field in dataclasses.fields(Settings):
        if setting_field.name == "store":
            continue
        lines += textwrap.wrap(setting_field.metadata["doc"], 88, initial_indent="# ",
                               subsequent_indent="# ")  # fmt: skip
        lines.append(f"#{setting_field.name} = {_toml_value(setting_field.default)}")
    return "\n".join(lines) + "\n"


def private_opener(path: str, flags: int) -> int:
    """For open(..., opener=): a new file only its owner may read and write. The daemon
    runs with umask 0 (callers' modes are applied exactly), so nothing it makes for
    itself may rely on the umask."""
    return os.open(path, flags, 0o600)


def make_private_dirs(path: Path) -> None:
    """`mkdir -p` whose new directories are 0700, whatever the umask (see above)."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)


def write_config_template(settings: Settings) -> bool:
    """Write the documented config.toml into a store that has none; True if written."""
    settings.make_state_dir()
    try:
        with open(settings.config_path, "x", encoding="utf-8") as file:
            file.write(config_template())
    except FileExistsError:
        return False
    return True


def effective_settings(settings: Settings) -> dict[str, Any]:
    """Every setting's value in effect, as plain data (for `semfs config`)."""
    return {
        f.name: sorted(value) if isinstance(value := getattr(settings, f.name), frozenset)
        else str(value) if isinstance(value, Path) else value
        for f in dataclasses.fields(Settings)
    }  # fmt: skip


# Where a setting's value comes from, lowest first: each overrides those before it.
# "store": the embedder of the store's vectors, kept when none is set.
SOURCES = ("default", "store", "profile", "config.toml", "mount option")


def explain_settings(
    settings: Settings, sources: dict[str, str], cuts: dict[str, float | None]
) -> dict[str, dict[str, Any]]:
    """Each setting's value in effect and its source (for `semfs config`). A relevance cut
    left unset shows the calibrated value in force, from `cuts`, marked calibrated."""
    explained: dict[str, dict[str, Any]] = {}
    for name, value in effective_settings(settings).items():
        if name == "store":
            continue
        entry = {"value": value, "source": sources.get(name, "default")}
        if value is None and cuts.get(name) is not None:
            entry.update(value=cuts[name], calibrated=True)
        explained[name] = entry
    return explained


def _toml_value(value: Any) -> str:
    if value is None:
        return "1.0  # an example: unset by default"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, frozenset):
        return "[" + ", ".join(f'"{item}"' for item in sorted(value)) + "]"
    return f"{value:_}" if isinstance(value, int) else str(value)
