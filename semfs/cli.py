"""The `semfs` command: mount, unmount, index, search, status, check, config, doctor,
install-service; and `semfs STORE MOUNTPOINT -o OPTIONS`, as mount(8) runs it."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from semfs import __version__
from semfs.commands.bulk import (
    RayOptions,
    format_hits,
    index_store,
    search_image_store,
    search_store,
)
from semfs.commands.check import check_store
from semfs.commands.doctor import as_dicts, report_text, run_checks
from semfs.commands.repair import repair_store
from semfs.commands.settings import config_report, config_text
from semfs.commands.status import status_data, status_text
from semfs.config import PROFILES, Settings
from semfs.daemon.logs import setup_daemon_logging
from semfs.daemon.mount import MountRequest, mount, read_lock_holder, unmount
from semfs.daemon.mounttable import mounted_store
from semfs.daemon.options import parse_mount_options
from semfs.daemon.service import FSTAB, LINK_DIR, carry_out, plan_install
from semfs.errors import QuietError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="semfs", description="A semantic image filesystem over a directory of images."
    )
    parser.add_argument("--version", action="version", version=f"semfs {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    mount_cmd = commands.add_parser("mount", help="mount STORE at MOUNTPOINT")
    mount_cmd.add_argument("store", help="the directory of images")
    mount_cmd.add_argument("mountpoint", help="an existing empty directory")
    mount_cmd.add_argument(
        "--foreground", action="store_true", help="stay attached instead of daemonising"
    )
    mount_cmd.add_argument("--debug", action="store_true", help="verbose logs")
    mount_cmd.add_argument(
        "--allow-other", action="store_true", default=None, help="let other users in"
    )
    _add_model_options(mount_cmd)
    mount_cmd.add_argument("--top-k", type=int, help="results listed per query (default 50)")
    mount_cmd.add_argument("--search-dir", help="name of the search directory (default search)")
    mount_cmd.add_argument(
        "-o",
        dest="options",
        metavar="OPTIONS",
        action=JoinedOptions,
        help="comma-separated mount options, -o repeated adds up: ro, debug, allow_other, "
        "nonempty (mount over files), or any setting of config.toml as name=value "
        "(top_k=20,ingest_workers=1)",
    )
    # Set by `semfs mount` on the daemon it starts: stderr is then the log file itself.
    mount_cmd.add_argument("--daemon-child", action="store_true", help=argparse.SUPPRESS)

    index_cmd = commands.add_parser(
        "index", help="caption and index every image of STORE now (resumable)"
    )
    index_cmd.add_argument("store")
    _add_model_options(index_cmd)
    index_cmd.add_argument("--quiet", action="store_true", help="no progress bar")
    index_cmd.add_argument(
        "--debug", action="store_true", help="--engine ray: Ray's own output here, not in ray.log"
    )
    index_cmd.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="ray: decode, caption and embed on a Ray cluster (docs/scale-out.md)",
    )
    index_cmd.add_argument(
        "--ray-address",
        help="a running cluster (e.g. auto, or ray://HOST:10001); default: start a local one",
    )
    index_cmd.add_argument(
        "--ray-workers",
        type=int,
        default=os.cpu_count() or 1,
        help="actors holding the models (default: one per CPU here)",
    )

    search_cmd = commands.add_parser(
        "search",
        help="print the images of STORE matching QUERY (or looking like --image), best first",
    )
    search_cmd.add_argument("store")
    search_cmd.add_argument(
        "query",
        nargs="?",
        help="what the images show, in words; with --image, only modifiers (@k=5 year:2023)",
    )
    search_cmd.add_argument(
        "--image", metavar="PATH", help="an example image instead of words: search by example"
    )
    search_cmd.add_argument("-k", type=int, help="at most this many results (default 50)")
    search_cmd.add_argument("--json", action="store_true", help="machine-readable output")
    _add_model_options(search_cmd)

    unmount_cmd = commands.add_parser("unmount", help="unmount MOUNTPOINT cleanly")
    unmount_cmd.add_argument("mountpoint")
    unmount_cmd.add_argument(
        "--lazy", action="store_true", help="detach now even if files are open there"
    )

    install_cmd = commands.add_parser(
        "install-service",
        help="mount STORE at MOUNTPOINT at every boot: a systemd unit (default) or fstab",
    )
    install_cmd.add_argument("store")
    install_cmd.add_argument("mountpoint", help="created if missing")
    install_cmd.add_argument(
        "--user", action="store_true", help="a user unit (systemctl --user), not system-wide"
    )
    install_cmd.add_argument(
        "--fstab", action="store_true", help="an /etc/fstab line (mount -t fuse.semfs) instead"
    )
    install_cmd.add_argument(
        "-o", dest="options", default="", action=JoinedOptions, help="mount options, as for mount"
    )
    install_cmd.add_argument(
        "--no-enable", action="store_true", help="write the files only; do not start it"
    )
    install_cmd.add_argument("--dry-run", action="store_true", help="print what would be done")
    install_cmd.add_argument("--unit-dir", type=Path, help=argparse.SUPPRESS)
    install_cmd.add_argument("--link-dir", type=Path, default=LINK_DIR, help=argparse.SUPPRESS)
    install_cmd.add_argument("--fstab-file", type=Path, default=FSTAB, help=argparse.SUPPRESS)

    config_cmd = commands.add_parser(
        "config",
        help="show the settings in effect for STORE (its mount's, if mounted), where each "
        "comes from, and where config.toml is",
    )
    config_cmd.add_argument("store", help="the store, or the mountpoint of its mount")
    config_cmd.add_argument("--json", action="store_true", help="machine-readable output")

    doctor_cmd = commands.add_parser(
        "doctor", help="check FUSE, permissions, the store and the models; say what to fix"
    )
    doctor_cmd.add_argument("store", nargs="?", help="also check this store")
    doctor_cmd.add_argument("mountpoint", nargs="?", help="also check this mountpoint")
    doctor_cmd.add_argument(
        "--no-models", action="store_true", help="skip loading the models (seconds)"
    )
    doctor_cmd.add_argument("--json", action="store_true", help="machine-readable output")

    status_cmd = commands.add_parser("status", help="report the catalog of STORE")
    status_cmd.add_argument("store", help="the store, or the mountpoint of its mount")
    status_cmd.add_argument("--json", action="store_true", help="machine-readable output")
    check_cmd = commands.add_parser(
        "check",
        help="check that catalog, store and index agree (an fsck); exit 0 consistent, "
        "1 problems repaired, 4 problems left",
    )
    check_cmd.add_argument("store")
    check_cmd.add_argument(
        "--repair", action="store_true", help="fix what is found (the store must be unmounted)"
    )
    check_cmd.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


class JoinedOptions(argparse.Action):
    """-o given more than once adds up, as mount(8) reads it: `-o ro -o top_k=5` is
    `-o ro,top_k=5` (argparse alone would keep only the last)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        before = getattr(namespace, self.dest, None)
        setattr(namespace, self.dest, f"{before},{values}" if before else str(values))


def _add_model_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--captioner",
        help="classifier[:efficientnet-lite0|1|2] (offline, default) or "
        "transformers:<hub id or directory> (e.g. Salesforce/blip-image-captioning-base)",
    )
    command.add_argument(
        "--embedder",
        help="sentence-transformers:<name or directory> (default all-MiniLM-L6-v2) or "
        "onnx:paraphrase-MiniLM-L3-v2 (low memory); unset, a store keeps its vectors' embedder",
    )
    command.add_argument(
        "--max-distance",
        "--threshold",
        type=float,
        help="relevance cut as angular distance (0..2); default: calibrated for the models",
    )
    command.add_argument(
        "--workers", type=int, help="ingest threads that read and decode images (default 2)"
    )
    command.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        help="a bundle of defaults; low-memory: for small devices (docs/low-memory.md)",
    )


def _model_overrides(args: argparse.Namespace) -> dict[str, object]:
    chosen = {
        "captioner": args.captioner,
        "embedder": args.embedder,
        "max_distance": args.max_distance,
        "ingest_workers": args.workers,
        "profile": args.profile,
    }
    return {name: value for name, value in chosen.items() if value is not None}


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.load(args.store, **_model_overrides(args))


COMMANDS = frozenset(
    {"mount", "unmount", "index", "search", "status", "check", "config", "doctor",
     "install-service"}
)  # fmt: skip


def as_mount_helper(argv: list[str]) -> list[str]:
    """mount(8) runs `semfs STORE MOUNTPOINT -o OPTIONS` (through mount.fuse3): that is
    `semfs mount STORE MOUNTPOINT -o OPTIONS`."""
    if len(argv) >= 2 and argv[0] not in COMMANDS and not argv[0].startswith("-"):
        return ["mount", *argv]
    return argv


def _parse(arguments: list[str]) -> argparse.Namespace:
    parser = _parser()
    args, extra = parser.parse_known_args(arguments)
    # argparse takes an optional positional only before the options: `semfs search STORE
    # --image P "@k=5"` leaves the modifiers over. They are the QUERY it did not take.
    if (
        args.command == "search"
        and args.query is None
        and len(extra) == 1
        and not extra[0].startswith("-")
    ):
        args.query, extra = extra[0], []
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = _parse(as_mount_helper(arguments))
    debug = getattr(args, "debug", False)
    quiet_level = logging.INFO if args.command == "mount" else logging.WARNING
    logging.basicConfig(
        level=logging.DEBUG if debug else quiet_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "mount":
            mount_command(args)
        elif args.command == "unmount":
            unmount(os.path.abspath(args.mountpoint), lazy=args.lazy)
        elif args.command == "install-service":
            install_command(args)
        elif args.command == "config":
            report = config_report(*Settings.load_with_sources(_store(args.store)))
            print(json.dumps(report, indent=2) if args.json else config_text(report))
        elif args.command == "doctor":
            findings = run_checks(args.store, args.mountpoint, models=not args.no_models)
            print(json.dumps(as_dicts(findings), indent=2) if args.json else report_text(findings))
            return 0 if all(f.ok for f in findings) else 1
        elif args.command == "index":
            on_ray = args.engine == "ray"
            ray = RayOptions(args.ray_address, args.ray_workers, args.debug) if on_ray else None
            print(index_store(_settings(args), progress=not args.quiet, ray=ray).text())
        elif args.command == "search" and args.image is None and args.query is None:
            raise QuietError("give either a QUERY or --image PATH")
        elif args.command == "search" and args.image is not None:
            modifiers = args.query or ""
            hits = search_image_store(_settings(args), Path(args.image), args.k, modifiers)
            print(format_hits(hits, as_json=args.json))
        elif args.command == "search":
            # Other models or cut than the mount's: compute here rather than ask it.
            own_models = any((args.captioner, args.embedder, args.max_distance is not None))
            hits = search_store(_settings(args), args.query, args.k, through_mount=not own_models)
            print(format_hits(hits, as_json=args.json))
        elif args.command == "status":
            report = status_data(Settings.load(_store(args.store)))
            print(json.dumps(report, indent=2) if args.json else status_text(report))
        elif args.command == "check":
            return check_command(Settings.load(args.store), args.repair, args.json)
    except QuietError as error:
        print(f"semfs: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    return 0


def _store(path: str) -> str:
    """A store given as itself, or as the mountpoint of its mount."""
    return mounted_store(path) or path


def mount_command(args: argparse.Namespace) -> None:
    options = parse_mount_options(args.options)
    flags = {
        **_model_overrides(args),
        "allow_other": args.allow_other,
        "top_k": args.top_k,
        "search_dir_name": args.search_dir,
    }
    overrides = {**options.settings, **{k: v for k, v in flags.items() if v is not None}}
    settings, sources = Settings.load_with_sources(args.store, **overrides)
    debug = args.debug or options.debug
    request = MountRequest(
        settings,
        os.path.abspath(args.mountpoint),
        debug,
        options.read_only,
        overrides,
        sources,
        nonempty=options.nonempty,
    )
    if args.foreground:
        setup_daemon_logging(settings, debug, stderr_is_log_file=args.daemon_child)
    mount(request, foreground=args.foreground)


def install_command(args: argparse.Namespace) -> None:
    store = Settings.load(args.store).store
    parse_mount_options(args.options)  # refuse a bad option now, not at boot
    mountpoint = os.path.abspath(args.mountpoint)
    plan = plan_install(
        store,
        mountpoint,
        user=args.user,
        options=args.options,
        use_fstab=args.fstab,
        enable=not args.no_enable,
        unit_dir=args.unit_dir,
        link_dir=args.link_dir,
        fstab=args.fstab_file,
    )
    if args.dry_run:
        print(plan.describe())
        return
    print("\n".join(carry_out(plan, mountpoint)))
    if args.fstab:
        print(f"mount it now with: mount {mountpoint} (and it mounts at every boot)")


# Exit codes of `semfs check`, as fsck's: problems corrected, problems left.
CHECK_REPAIRED, CHECK_PROBLEMS_LEFT = 1, 4


def check_command(settings: Settings, repair: bool, as_json: bool) -> int:
    if not repair:
        holder = read_lock_holder(settings)
        report = check_store(settings, holder.mountpoint if holder else None)
        print(json.dumps(report.as_dict(), indent=2) if as_json else report.text())
        return 0 if report.consistent else CHECK_PROBLEMS_LEFT
    before, actions, after = repair_store(settings)
    if as_json:
        print(json.dumps({"before": before.as_dict(), "repairs": actions,
                          "after": after.as_dict()}, indent=2))  # fmt: skip
    else:
        print(before.text())
        if actions:
            print("\nrepairs:\n" + "\n".join(f"  {action}" for action in actions))
            print("\nafter repair:\n" + after.text())
    if not after.consistent:
        return CHECK_PROBLEMS_LEFT
    return CHECK_REPAIRED if actions else 0
