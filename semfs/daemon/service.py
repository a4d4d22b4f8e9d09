"""Mounting at boot: the systemd units, the fstab line, and installing them.

One template unit, `semfs@.service`, serves every mount: its instance is the escaped
mountpoint (`semfs@mnt-photos.service` mounts at /mnt/photos, as systemd names mount
units) and a drop-in beside it says which store, with what options. The same template
works as a user unit (`systemctl --user`). The fstab route goes through mount(8):
`mount -t fuse.semfs` runs mount.fuse3, which runs `semfs STORE MOUNTPOINT -o OPTIONS`
from the PATH, so `semfs` is linked into /usr/local/bin.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from semfs.errors import QuietError

TEMPLATE_NAME = "semfs@.service"
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
LINK_DIR = Path("/usr/local/bin")
FSTAB = Path("/etc/fstab")


def user_unit_dir() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(config) / "systemd" / "user"


def escape_path(path: str) -> str:
    """The unit-name form of a path, as `systemd-escape --path` writes it."""
    trimmed = os.path.normpath(path).strip("/")
    if not trimmed:
        return "-"
    escaped = []
    for index, byte in enumerate(os.fsencode(trimmed)):
        char = chr(byte)
        if char == "/":
            escaped.append("-")
        elif (char.isascii() and char.isalnum()) or char in ":_" or (char == "." and index):
            escaped.append(char)
        else:
            escaped.append(f"\\x{byte:02x}")
    return "".join(escaped)


def instance_unit(mountpoint: str) -> str:
    return f"semfs@{escape_path(mountpoint)}.service"


def unit_template(executable: str, user: bool = False) -> str:
    """`semfs@.service`. It runs the mount in the foreground, so systemd supervises the
    daemon itself: it is ready (Type=notify) once the mount is up, `systemctl stop`
    sends SIGTERM (semfs unmounts cleanly, finishing the batch it is ingesting), and a
    crash is restarted; the dead mount a crash leaves is cleared after it stops and
    again by the next `semfs mount`."""
    command = _unit_quote(executable)
    unmount = _unit_quote(shutil.which("fusermount3") or "/bin/fusermount3")
    target = "default.target" if user else "multi-user.target"
    return f"""\
[Unit]
Description=semfs semantic image filesystem at %f
After=local-fs.target
RequiresMountsFor=%f

[Service]
Type=notify
NotifyAccess=main
# SEMFS_STORE and SEMFS_OPTIONS: from the drop-in semfs@<instance>.service.d/semfs.conf
ExecStart={command} mount --foreground ${{SEMFS_STORE}} %f $SEMFS_OPTIONS
ExecStopPost=-{unmount} -u -z -q %f
Restart=on-failure
RestartSec=2
TimeoutStartSec=120
TimeoutStopSec=90
KillMode=mixed

[Install]
WantedBy={target}
"""


def instance_dropin(store: Path, options: str = "") -> str:
    """The drop-in that gives one instance its store and options."""
    for value in (str(store), options):
        if any(char in value for char in '"\\\n$%'):
            raise QuietError(f"{value!r}: a unit cannot carry '\"', '\\', '$', '%' or newlines")
    words = f'"SEMFS_STORE={store}"' + (f' "SEMFS_OPTIONS=-o {options}"' if options else "")
    return f"""\
[Unit]
RequiresMountsFor="{store}"

[Service]
Environment={words}
"""


def fstab_line(store: Path, mountpoint: str, options: str = "") -> str:
    """An /etc/fstab line that mounts through mount(8); nofail: a missing store does not
    hold up the boot."""
    extra = f",{options}" if options else ""
    return (
        f"{_fstab_escape(str(store))} {_fstab_escape(mountpoint)} fuse.semfs "
        f"defaults,nofail,x-systemd.requires-mounts-for={_fstab_escape(str(store))}{extra} 0 0"
    )


@dataclass
class InstallPlan:
    """What installing writes and runs, shown before (--dry-run) or done."""

    files: dict[Path, str] = field(default_factory=dict)
    links: dict[Path, Path] = field(default_factory=dict)
    fstab: tuple[Path, str] | None = None
    commands: list[list[str]] = field(default_factory=list)

    def describe(self) -> str:
        lines = [f"write {path}:\n{_indent(text)}" for path, text in self.files.items()]
        lines += [f"link {link} -> {target}" for link, target in self.links.items()]
        if self.fstab:
            lines.append(f"append to {self.fstab[0]}:\n{_indent(self.fstab[1])}")
        lines += ["run " + shlex.join(command) for command in self.commands]
        return "\n".join(lines)


def plan_install(
    store: Path,
    mountpoint: str,
    *,
    user: bool = False,
    options: str = "",
    use_fstab: bool = False,
    enable: bool = True,
    unit_dir: Path | None = None,
    link_dir: Path = LINK_DIR,
    fstab: Path = FSTAB,
    executable: str | None = None,
) -> InstallPlan:
    program = executable or semfs_program()
    plan = InstallPlan()
    if use_fstab:
        if user:
            raise QuietError("--fstab mounts are system-wide; leave out --user")
        plan.links[link_dir / "semfs"] = Path(program)
        plan.fstab = (fstab, fstab_line(store, mountpoint, options))
        return plan
    units = unit_dir or (user_unit_dir() if user else SYSTEM_UNIT_DIR)
    instance = instance_unit(mountpoint)
    plan.files[units / TEMPLATE_NAME] = unit_template(program, user)
    plan.files[units / f"{instance}.d" / "semfs.conf"] = instance_dropin(store, options)
    if not user:
        plan.links[link_dir / "semfs"] = Path(program)
    if enable:
        systemctl = ["systemctl", "--user"] if user else ["systemctl"]
        plan.commands += [[*systemctl, "daemon-reload"], [*systemctl, "enable", "--now", instance]]
    return plan


def carry_out(plan: InstallPlan, mountpoint: str) -> list[str]:
    """Do what the plan says; the lines returned say what was done."""
    done = []
    os.makedirs(mountpoint, exist_ok=True)
    for path, text in plan.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        done.append(f"wrote {path}")
    for link, target in plan.links.items():
        if link.is_symlink() or link.exists():
            if link.resolve() == target.resolve():
                continue
            link.unlink()
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)
        done.append(f"linked {link} -> {target}")
    if plan.fstab:
        done.append(_append_fstab(*plan.fstab, mountpoint))
    for command in plan.commands:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise QuietError(
                f"{shlex.join(command)} failed: {result.stderr.strip()}\n"
                f"(files are in place; run it again once systemd is reachable)"
            )
        done.append(f"ran {shlex.join(command)}")
    return done


def _append_fstab(fstab: Path, line: str, mountpoint: str) -> str:
    existing = fstab.read_text() if fstab.exists() else ""
    target = _fstab_escape(mountpoint)
    for old in existing.splitlines():
        fields = old.split()
        if len(fields) > 1 and not old.lstrip().startswith("#") and fields[1] == target:
            if old.strip() == line:
                return f"{fstab} already has the line"
            raise QuietError(f"{fstab} already mounts something at {mountpoint}: {old}")
    with open(fstab, "a", encoding="utf-8") as file:
        file.write(("" if not existing or existing.endswith("\n") else "\n") + line + "\n")
    return f"appended to {fstab}: {line}"


def semfs_program() -> str:
    """The `semfs` script beside this Python (the venv's), or `python -m semfs`."""
    script = Path(sys.executable).parent / "semfs"
    if script.exists():
        return str(script)
    raise QuietError(f"no semfs script beside {sys.executable}; install semfs with pip first")


def _unit_quote(path: str) -> str:
    text = path.replace("%", "%%")
    return f'"{text}"' if any(char.isspace() for char in text) else text


def _fstab_escape(text: str) -> str:
    if "\n" in text:
        raise QuietError(f"{text!r}: fstab cannot carry a newline")
    return text.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011")


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.rstrip("\n").split("\n"))
