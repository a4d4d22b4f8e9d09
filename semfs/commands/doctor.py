"""`semfs doctor`: check what a mount needs (FUSE, permissions, the store, the models)
and say what to fix."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image

from semfs.commands.status import mount_state
from semfs.config import Settings
from semfs.daemon.mounttable import find_mount, is_stale
from semfs.daemon.service import FSTAB, LINK_DIR, semfs_program
from semfs.errors import QuietError

MIN_FREE_BYTES = 200 * 1024 * 1024  # the catalog and index need room to grow
# The PATH mount(8) starts its helper with (mount.fuse3, which runs `semfs` by name),
# whatever the caller's: util-linux 2.38 on Debian 12, as printed by a helper it ran.
MOUNT_HELPER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    detail: str
    fix: str = ""


def run_checks(store: str | None, mountpoint: str | None, models: bool) -> list[Finding]:
    findings = [*_fuse_checks(), mount_helper_check()]
    settings = None
    if store is not None:
        try:
            settings = Settings.load(store)
        except QuietError as error:
            findings.append(Finding("store", False, str(error), _STORE_FIX))
        else:
            findings += _store_checks(settings)
    if mountpoint is not None:
        findings.append(_mountpoint_check(os.path.abspath(mountpoint)))
    if models:
        findings += model_checks(settings or Settings(store=Path(".")))
    return findings


def report_text(findings: list[Finding]) -> str:
    lines = []
    for finding in findings:
        lines.append(f"{'ok  ' if finding.ok else 'FAIL'}  {finding.check}: {finding.detail}")
        if finding.fix and not finding.ok:
            lines.append(f"      fix: {finding.fix}")
    failed = sum(not f.ok for f in findings)
    lines.append(f"\n{failed} problem{'s' * (failed != 1)} found" if failed else "\nall good")
    return "\n".join(lines)


def as_dicts(findings: list[Finding]) -> list[dict[str, object]]:
    return [asdict(finding) for finding in findings]


# --- FUSE ---------------------------------------------------------------------------------

_FUSE_FIX = "apt-get install fuse3 (in a container: run it with --device /dev/fuse)"
_STORE_FIX = "give the directory of images as STORE (it must exist)"


def _fuse_checks() -> Iterator[Finding]:
    with open("/proc/filesystems") as table:
        known = "fuse" in table.read().split()
    yield Finding(
        "kernel", known, "FUSE is available" if known else "the kernel has no FUSE",
        "modprobe fuse",
    )  # fmt: skip
    yield _device_check()
    helper = shutil.which("fusermount3")
    if helper is None:
        yield Finding("fusermount3", False, "not found on PATH", _FUSE_FIX)
    else:
        setuid = bool(os.stat(helper).st_mode & stat.S_ISUID)
        needed = os.geteuid() != 0
        yield Finding(
            "fusermount3",
            setuid or not needed,
            f"{helper}" + ("" if setuid else " (not setuid: only root can mount)"),
            f"chmod u+s {helper} (or reinstall fuse3)",
        )
    try:
        import pyfuse3

        yield Finding("pyfuse3", True, f"version {pyfuse3.__version__}")
    except ImportError as error:
        yield Finding("pyfuse3", False, str(error), "apt-get install libfuse3-dev pkg-config; "
                      "pip install pyfuse3 (scripts/install.sh does both)")  # fmt: skip


def mount_helper_check(
    required: bool | None = None,
    search_path: str = MOUNT_HELPER_PATH,
    fstab: Path = FSTAB,
    link_dir: Path = LINK_DIR,
    program: str | None = None,
) -> Finding:
    """Does mount(8) find this installation's `semfs`? An fstab line (or `mount -t
    fuse.semfs`) runs it by name from mount's fixed PATH, never from a venv. A problem
    when `required`; by default, when fstab has a semfs line."""
    this = program or _this_semfs()
    found = shutil.which("semfs", path=search_path)
    if found is not None and (this is None or os.path.realpath(found) == os.path.realpath(this)):
        return Finding("mount helper", True, f"mount(8) finds semfs at {found}")
    needs = "fstab lines need" if required else f"{fstab}'s semfs line needs"
    if required is None:
        required = _fstab_mounts_semfs(fstab)
    fix = f"ln -sfn {this or 'PATH/TO/semfs'} {link_dir / 'semfs'} (as root; or install.sh --link)"
    what = (
        f"no semfs on mount(8)'s PATH ({search_path})"
        if found is None
        else f"mount(8) runs {found}, not this installation's {this}"
    )
    if required:
        return Finding("mount helper", False, f"{what}, which {needs}", fix)
    return Finding("mount helper", True, f"{what}; only an fstab line would need it: {fix}")


def _this_semfs() -> str | None:
    try:
        return semfs_program()
    except QuietError:  # not run from an installation's script: the caller's semfs, if any
        return shutil.which("semfs")


def _fstab_mounts_semfs(fstab: Path) -> bool:
    """A line of type fuse.semfs, or of the older form: type fuse, source semfs#STORE."""
    try:
        lines = fstab.read_text(errors="replace").splitlines()
    except OSError:
        return False
    entries = [line.split() for line in lines if not line.lstrip().startswith("#")]
    return any(
        len(fields) > 2
        and (fields[2] == "fuse.semfs" or (fields[2] == "fuse" and fields[0].startswith("semfs#")))
        for fields in entries
    )


def _device_check() -> Finding:
    try:
        fd = os.open("/dev/fuse", os.O_RDWR)
    except FileNotFoundError:
        return Finding("/dev/fuse", False, "missing", _FUSE_FIX)
    except PermissionError:
        return Finding(
            "/dev/fuse", False, f"not readable and writable by uid {os.geteuid()}",
            "mount as root, or give /dev/fuse mode 0666 (Debian's default)",
        )  # fmt: skip
    os.close(fd)
    return Finding("/dev/fuse", True, "readable and writable")


# --- the store ------------------------------------------------------------------------


def _store_checks(settings: Settings) -> Iterator[Finding]:
    store = settings.store
    writable = os.access(store, os.W_OK | os.X_OK)
    yield Finding(
        "store", writable, f"{store}" + ("" if writable else " is not writable by this user"),
        f"mount as the owner of {store} (or chown it)",
    )  # fmt: skip
    state = settings.state_dir
    if state.exists():
        info = state.stat()
        private = not info.st_mode & 0o077 and info.st_uid == os.geteuid()
        yield Finding(
            "state directory", private, f"{state} mode {stat.S_IMODE(info.st_mode):o}",
            f"chmod 700 {state} (it holds every photo's path and caption)",
        )  # fmt: skip
    if settings.catalog_path.exists():
        yield _catalog_check(settings.catalog_path)
    free = shutil.disk_usage(store).free
    yield Finding(
        "disk space", free >= MIN_FREE_BYTES, f"{free / 2**30:.1f} GiB free beside the store",
        "free some space: with a full disk, writes fail and ingest pauses",
    )  # fmt: skip
    if settings.allow_other and os.geteuid() != 0:
        yield _allow_other_check()
    mount = mount_state(settings)
    if mount["active"] or mount["stale"]:
        yield Finding(
            "mount", not mount["stale"],
            f"{'DEAD (its daemon is gone)' if mount['stale'] else 'mounted'} at "
            f"{mount['mountpoint']}",
            f"semfs unmount --lazy {mount['mountpoint']}, then mount again",
        )  # fmt: skip


def _catalog_check(path: Path) -> Finding:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error as error:
        verdict = str(error)
    return Finding(
        "catalog", verdict == "ok", f"{path.name}: {verdict}",
        "semfs check STORE --repair (with the store unmounted)",
    )  # fmt: skip


def _allow_other_check() -> Finding:
    try:
        with open("/etc/fuse.conf") as conf:
            allowed = any(line.strip() == "user_allow_other" for line in conf)
    except FileNotFoundError:
        allowed = False
    return Finding(
        "allow_other", allowed,
        "user_allow_other is set" if allowed else "allow_other is asked for, but only root may",
        "add the line user_allow_other to /etc/fuse.conf",
    )  # fmt: skip


def _mountpoint_check(mountpoint: str) -> Finding:
    entry = find_mount(mountpoint)
    if entry is not None:
        if is_stale(mountpoint):
            return Finding(
                "mountpoint", False, f"{mountpoint} is a dead {entry.fstype} mount",
                f"semfs unmount --lazy {mountpoint} (or fusermount3 -u -z {mountpoint})",
            )  # fmt: skip
        return Finding("mountpoint", True, f"{mountpoint}: mounted ({entry.fstype})")
    if not os.path.isdir(mountpoint):
        return Finding("mountpoint", False, f"{mountpoint} is not a directory",
                       f"mkdir -p {mountpoint}")  # fmt: skip
    return Finding("mountpoint", True, f"{mountpoint}: a directory, not mounted")


# --- the models -----------------------------------------------------------------------


def model_checks(settings: Settings) -> Iterator[Finding]:
    """Load and run each model `settings` name. Loading makes what a model needs once per
    user (its ONNX export, the image features' projection) if it is not cached, so this
    also prepares them outside the daemon (scripts/install.sh, docs/low-memory.md)."""
    from semfs.ml.captioner import make_captioner
    from semfs.ml.embedder import make_embedder
    from semfs.ml.image_features import ImageFeatures

    def caption() -> str:
        return make_captioner(settings.captioner).caption([Image.new("RGB", (64, 64), "red")])[0]

    def embed() -> str:
        vector = make_embedder(settings.embedder).embed(["a test"])[0]
        return f"{len(vector)}-d vector"

    def image_features() -> str:
        model = ImageFeatures(settings.image_features, settings.image_feature_dimensions)
        vector = model.features([Image.new("RGB", (64, 64), "red")])[0]
        return f"{len(vector)}-d vector"

    yield _try_model("captioner", settings.captioner, caption)
    yield _try_model("embedder", settings.embedder, embed)
    if settings.image_features:
        yield _try_model("image features", settings.image_features, image_features)


def _try_model(kind: str, spec: str, use: Callable[[], str]) -> Finding:
    started = time.monotonic()
    try:
        result = use()
    except Exception as error:  # any failure to load is what the user must hear about
        return Finding(
            kind, False, f"{spec}: {type(error).__name__}: {error}",
            "see README 'Choosing models': packaged models need their pip package; a hub "
            "model must be downloaded first (save_pretrained) and given as a directory",
        )  # fmt: skip
    return Finding(kind, True, f"{spec}: loads and runs in {time.monotonic() - started:.1f} s "
                   f"({result!r})")  # fmt: skip
