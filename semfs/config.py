"""Settings of one store: defaults, overridden by STORE/.semfs/config.toml."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semfs.errors import QuietError

STATE_DIR_NAME = ".semfs"
# The caption xattr: set by a person on an image (it wins over the model's), and shown on
# every search result.
CAPTION_XATTR = b"user.semfs.caption"

DEFAULT_IMAGE_EXTENSIONS = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp",
        ".heic", ".heif", ".avif", ".jxl", ".ppm", ".pgm", ".pbm", ".ico",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Settings:
    """Everything a mount needs to know; one instance per store."""

    store: Path
    # Kernel cache lifetimes. Changes made through the mount are seen at once whatever
    # these are; changes made directly in the store while mounted show up after them.
    entry_timeout: float = 5.0
    attr_timeout: float = 5.0
    # Threads for blocking file I/O and hashing, so the trio thread never waits on disk.
    io_threads: int = 8
    image_extensions: frozenset[str] = field(default=DEFAULT_IMAGE_EXTENSIONS)
    allow_other: bool = False
    # The kernel's writeback cache: fewer, larger writes to the daemon (a 100 MiB cp
    # 1.4x faster), but data written and not yet closed or fsynced is lost if the daemon
    # dies, and small files cost one request more. Off: every write() reaches the store
    # before it returns (docs/benchmarks-passthrough.md).
    writeback_cache: bool = False

    # --- search -----------------------------------------------------------------------
    # Models: "classifier[:efficientnet-lite0|1|2]" (offline, the default) or
    # "transformers:<hub id or directory>"; "sentence-transformers:<name or directory>"
    # or "onnx:paraphrase-MiniLM-L3-v2" (low memory).
    captioner: str = "classifier:efficientnet-lite0"
    embedder: str = "sentence-transformers:all-MiniLM-L6-v2"
    search_dir_name: str = "search"
    top_k: int = 50
    # Angular distance (0 = same direction, 2 = opposite) above which a result is cut.
    # None: the value calibrated for the captioner/embedder pair (see semfs/ml/calibration.py).
    max_distance: float | None = None
    # Ingest: threads that read and decode images (the models run one batch at a time).
    ingest_workers: int = 2
    ingest_batch: int = 8
    torch_threads: int = 0  # 0: let torch decide
    max_image_pixels: int = 100_000_000  # larger images are refused as decompression bombs
    # Index: Annoy trees and search_k (nodes inspected per query; see docs/architecture.md).
    index_trees: int = 25
    index_search_k: int = 10_000
    # New vectors are searched exactly until this many wait; then the base index is rebuilt.
    rebuild_threshold: int = 2_000
    # How long a search waits for the models to load before giving up (EAGAIN).
    model_wait: float = 120.0

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
        root = Path(store).resolve()
        if not root.is_dir():
            raise QuietError(f"store {root} is not a directory")
        values: dict[str, Any] = {}
        config_file = root / STATE_DIR_NAME / "config.toml"
        if config_file.is_file():
            values.update(_read_config(config_file))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(store=root, **values)


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
