"""`semfs config`: the settings in force, each with where its value comes from.

While the store is mounted they are asked of the daemon (the reserved xattr of the
mount's root, daemon/reports.py): its profile, mount options and config.toml as read
when it started, which reading config.toml now cannot tell. Otherwise they are what a
mount with no options would use. A relevance cut left unset shows the calibrated value
in force.
"""

from __future__ import annotations

from typing import Any

from semfs.commands.status import mount_state
from semfs.config import SETTINGS_XATTR, Settings, explain_settings
from semfs.daemon.reports import ask_mount
from semfs.search.engine import relevance_cuts

COMMENT_COLUMN = 48  # where the sources start in the text
CALIBRATED_FOR = {"max_distance": "the captioner and embedder",
                  "example_max_distance": "image_features"}  # fmt: skip


def config_report(settings: Settings, sources: dict[str, str]) -> dict[str, Any]:
    """`settings` and `sources`: the store's, loaded with no options."""
    mount = mount_state(settings)
    answer = ask_mount(mount["mountpoint"], SETTINGS_XATTR) if mount["active"] else None
    in_force = answer.get("settings") if isinstance(answer, dict) else None
    return {
        "store": str(settings.store),
        "config_file": str(settings.config_path),
        "config_file_exists": settings.config_path.exists(),
        "mount": mount,
        "from_daemon": isinstance(in_force, dict),
        "settings": in_force
        if isinstance(in_force, dict)
        else explain_settings(settings, sources, relevance_cuts(settings)),
    }


def config_text(report: dict[str, Any]) -> str:
    mount = report["mount"]
    if report["from_daemon"]:
        head = f"# in force in the mount at {mount['mountpoint']} (pid {mount['pid']})"
    elif mount["active"]:
        head = (f"# the mount at {mount['mountpoint']} did not answer: what a mount with no"
                " options would use")  # fmt: skip
    else:
        head = "# not mounted: what a mount with no options would use"
    config_file = report["config_file"]
    lines = [head, f"# config file: {config_file}"
             + ("" if report["config_file_exists"] else " (none yet: all defaults)")]  # fmt: skip
    for name, entry in report["settings"].items():
        assignment = f"{name} = {entry['value']!r}"
        source = entry["source"]
        if entry.get("calibrated"):
            source += f" (unset: calibrated for {CALIBRATED_FOR.get(name, 'the models')})"
        elif source == "store":  # config.embedder_of_vectors
            source += " (unset: the embedder of the store's vectors)"
        lines.append(f"{assignment:<{COMMENT_COLUMN - 1}} # {source}")
    return "\n".join(lines)
