"""`-o` mount options, as mount(8), fstab and the systemd units pass them.

`mount -t fuse.semfs STORE MOUNTPOINT -o top_k=20,allow_other` reaches semfs (through
mount.fuse3) as `semfs STORE MOUNTPOINT -o rw,top_k=20,allow_other,dev,suid`: the generic
options mount(8) adds are accepted and ignored, any setting of config.toml can be given
as `name=value`, and a few names of the command line are understood as well.
`nonempty` lets semfs mount over a directory that holds files (hidden while mounted),
as FUSE 2's option did; semfs refuses such a mountpoint otherwise.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from semfs.config import Settings
from semfs.errors import QuietError

# What mount(8) and fstab add that means nothing to a FUSE passthrough (or is the
# kernel's business): accepted and ignored. `x-*` (systemd's, udisks') likewise.
IGNORED = frozenset(
    {
        "rw", "defaults", "auto", "noauto", "user", "nouser", "users", "owner", "group",
        "dev", "nodev", "suid", "nosuid", "exec", "noexec", "async", "sync",
        "atime", "noatime", "relatime", "norelatime", "strictatime", "nostrictatime",
        "diratime", "nodiratime", "lazytime", "nolazytime", "nofail", "_netdev",
        "default_permissions",  # always on
    }
)  # fmt: skip
# Command-line spellings, for people who know the flags rather than config.toml.
ALIASES = {
    "workers": "ingest_workers",
    "search_dir": "search_dir_name",
    "threshold": "max_distance",
    "k": "top_k",
}
# Settings that make no sense as one word of a comma-separated list.
NOT_OPTIONS = frozenset({"store", "image_extensions"})


@dataclass(frozen=True)
class MountOptions:
    settings: dict[str, Any] = field(default_factory=dict)
    read_only: bool = False
    debug: bool = False
    nonempty: bool = False  # mount over a directory with files in it


def parse_mount_options(text: str | None) -> MountOptions:
    """Parse `a,b=c,...`; an unknown name or a bad value is an error naming it."""
    settings: dict[str, Any] = {}
    read_only = debug = nonempty = False
    types = _setting_types()
    for item in filter(None, (text or "").split(",")):
        name, has_value, value = item.partition("=")
        name = ALIASES.get(name.replace("-", "_"), name.replace("-", "_"))
        if item in IGNORED or name.startswith("x_") or item.startswith("x-"):
            continue
        if item in ("ro", "rw"):
            read_only = item == "ro"
        elif item == "debug":
            debug = True
        elif item == "nonempty":
            nonempty = True
        elif name in types:
            settings[name] = _convert(name, types[name], value if has_value else None)
        else:
            known = ", ".join(sorted(types))
            raise QuietError(
                f"unknown mount option {item!r}; semfs takes ro, debug, nonempty and {known}"
            )
    return MountOptions(settings, read_only, debug, nonempty)


def format_mount_options(options: MountOptions) -> str:
    """The inverse of `parse_mount_options`, for handing options on to a child."""
    items = ["ro"] if options.read_only else []
    items += ["debug"] if options.debug else []
    items += ["nonempty"] if options.nonempty else []
    for name, value in options.settings.items():
        items.append(f"{name}={str(value).lower() if isinstance(value, bool) else value}")
    return ",".join(items)


def _setting_types() -> dict[str, type]:
    hints = typing.get_type_hints(Settings)
    return {
        f.name: hints[f.name] for f in dataclasses.fields(Settings) if f.name not in NOT_OPTIONS
    }


def _convert(name: str, kind: Any, value: str | None) -> Any:
    if kind is bool:
        if value is None or value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise QuietError(f"mount option {name}: {value!r} is not true or false")
    if value is None or value == "":
        raise QuietError(f"mount option {name} needs a value ({name}=...)")
    number = kind if kind in (int, float) else float if kind == float | None else None
    if number is None:
        return value
    try:
        return number(value)
    except ValueError:
        raise QuietError(f"mount option {name}: {value!r} is not a number") from None
