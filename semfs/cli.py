"""The `semfs` command: mount, unmount, index, search, status, check, service."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict

from semfs import __version__
from semfs.bulk import format_hits, index_store, search_store
from semfs.catalog import Catalog
from semfs.check import check_store
from semfs.config import Settings
from semfs.errors import QuietError
from semfs.mount import MountRequest, mount, read_lock_holder, unmount
from semfs.repair import repair_store
from semfs.service import systemd_unit


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

    index_cmd = commands.add_parser(
        "index", help="caption and index every image of STORE now (resumable)"
    )
    index_cmd.add_argument("store")
    _add_model_options(index_cmd)
    index_cmd.add_argument("--quiet", action="store_true", help="no progress bar")

    search_cmd = commands.add_parser(
        "search", help="print the images of STORE matching QUERY, best first"
    )
    search_cmd.add_argument("store")
    search_cmd.add_argument("query")
    search_cmd.add_argument("-k", type=int, help="at most this many results (default 50)")
    search_cmd.add_argument("--json", action="store_true", help="machine-readable output")
    _add_model_options(search_cmd)

    unmount_cmd = commands.add_parser("unmount", help="unmount MOUNTPOINT cleanly")
    unmount_cmd.add_argument("mountpoint")
    unmount_cmd.add_argument(
        "--lazy", action="store_true", help="detach now even if files are open there"
    )

    service_cmd = commands.add_parser(
        "service", help="print a systemd unit that mounts STORE at MOUNTPOINT at boot"
    )
    service_cmd.add_argument("store")
    service_cmd.add_argument("mountpoint", help="an existing directory")

    status_cmd = commands.add_parser("status", help="report the catalog of STORE")
    status_cmd.add_argument("store")
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


def _add_model_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--captioner",
        help="classifier[:efficientnet-lite0|1|2] (offline, default) or "
        "transformers:<hub id or directory> (e.g. Salesforce/blip-image-captioning-base)",
    )
    command.add_argument(
        "--embedder",
        help="sentence-transformers:<name or directory> (default all-MiniLM-L6-v2) or "
        "onnx:paraphrase-MiniLM-L3-v2 (low memory)",
    )
    command.add_argument(
        "--max-distance",
        type=float,
        help="angular distance cut (0..2); default: calibrated for the models",
    )


def _settings(args: argparse.Namespace, **more: object) -> Settings:
    return Settings.load(
        args.store,
        captioner=args.captioner,
        embedder=args.embedder,
        max_distance=args.max_distance,
        **more,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    quiet_level = logging.INFO if args.command == "mount" else logging.WARNING
    logging.basicConfig(
        level=logging.DEBUG if debug else quiet_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "mount":
            settings = _settings(
                args,
                allow_other=args.allow_other,
                top_k=args.top_k,
                search_dir_name=args.search_dir,
            )
            forwarded = [
                f"--{name.replace('_', '-')}={value}"
                for name in ("captioner", "embedder", "max_distance", "top_k", "search_dir")
                if (value := getattr(args, name)) is not None
            ]
            request = MountRequest(
                settings, os.path.abspath(args.mountpoint), debug, tuple(forwarded)
            )
            mount(request, foreground=args.foreground)
        elif args.command == "unmount":
            unmount(os.path.abspath(args.mountpoint), lazy=args.lazy)
        elif args.command == "service":
            settings = Settings.load(args.store)
            print(systemd_unit(settings.store, os.path.abspath(args.mountpoint)), end="")
        elif args.command == "index":
            print(index_store(_settings(args), progress=not args.quiet).text())
        elif args.command == "search":
            # Other models or cut than the mount's: compute here rather than ask it.
            own_models = any((args.captioner, args.embedder, args.max_distance is not None))
            hits = search_store(_settings(args), args.query, args.k, through_mount=not own_models)
            print(format_hits(hits, as_json=args.json))
        elif args.command == "status":
            print(status_report(Settings.load(args.store), as_json=args.json))
        elif args.command == "check":
            return check_command(Settings.load(args.store), args.repair, args.json)
    except QuietError as error:
        print(f"semfs: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    return 0


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


def status_report(settings: Settings, as_json: bool) -> str:
    holder = read_lock_holder(settings)
    report: dict[str, object] = {
        "store": str(settings.store),
        "mounted_at": holder.mountpoint if holder else None,
        "pid": holder.pid if holder else None,
    }
    if settings.catalog_path.exists():
        catalog = Catalog.open(settings.catalog_path)
        try:
            report["schema_version"] = catalog.schema_version
            report.update(asdict(catalog.stats()))
            report["captioner"] = catalog.get_meta("captioner")
            report["embedder"] = catalog.get_meta("embedder")
            report["failures"] = [
                {"path": os.fsdecode(path), "reason": reason}
                for path, reason in catalog.failures(20)
            ]
            last = catalog.get_meta("last_reconcile")
            report["last_reconcile"] = json.loads(last) if last else None
        finally:
            catalog.close()
    else:
        report.update(schema_version=None, files=0, indexed=0, queued=0, failed=0)
        report["last_reconcile"] = None
    if as_json:
        return json.dumps(report, indent=2)
    reconciled = report["last_reconcile"]
    mounted = f"at {holder.mountpoint} (pid {holder.pid})" if holder else "no"
    lines = [
        f"store:    {report['store']}",
        f"mounted:  {mounted}",
        f"files:    {report['files']}",
        f"indexed:  {report['indexed']}",
        f"queued:   {report['queued']}",
        f"failed:   {report['failed']}",
        f"reconciled: {reconciled['summary'] if isinstance(reconciled, dict) else 'never'}",
        f"captioner: {report.get('captioner') or '-'}",
        f"embedder: {report.get('embedder') or '-'}",
    ]
    failures = report.get("failures")
    if isinstance(failures, list):
        lines += [f"  failed: {f['path']}: {f['reason']}" for f in failures]
    if report["schema_version"] is None:
        lines.append("(no catalog yet: the store has not been mounted)")
    return "\n".join(lines)
