"""`semfs status`: what a store holds and whether it is mounted, for people and scripts."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from typing import Any

from semfs.catalog.database import Catalog
from semfs.config import ERRORS_XATTR, FSTYPE, Settings
from semfs.daemon.mount import read_lock_holder
from semfs.daemon.mounttable import find_mount, is_stale
from semfs.daemon.reports import ask_mount
from semfs.search.bases import base_bytes, base_files

BASE_NAMES = {"ivf": "FAISS IVF ", "ann": "Annoy "}  # by base file suffix
FAILURES_SHOWN = 20
ERRORS_SHOWN = 10  # of the daemon's last warnings and errors, in the text (all in --json)


def status_data(settings: Settings) -> dict[str, Any]:
    report: dict[str, Any] = {"store": str(settings.store), "mount": mount_state(settings)}
    report.update(schema_version=None, images=0, files=0, indexed=0, queued=0, failed=0)
    report.update(failures=[], last_reconcile=None, captioner=None, embedder=None)
    report.update(image_features=0, image_features_queued=0)  # for search by example
    report.update(texts_read=0, texts_queued=0)  # text in images (OCR), when idle
    report["index"] = _index_state(settings, None)
    # Asked of the daemon: kept in its memory, they reach us when its log file could not
    # take them (a full disk). None: not mounted, or the daemon did not answer.
    mount = report["mount"]
    errors = ask_mount(mount["mountpoint"], ERRORS_XATTR) if mount["active"] else None
    report["recent_errors"] = errors if isinstance(errors, list) else None
    if not settings.catalog_path.exists():
        return report
    catalog = Catalog.open(settings.catalog_path)
    try:
        report["schema_version"] = catalog.schema_version
        stats = asdict(catalog.stats())
        report.update(stats, images=stats["files"])
        report["captioner"] = catalog.get_meta("captioner")
        report["embedder"] = catalog.get_meta("embedder")
        done, waiting = catalog.features.feature_counts()
        report.update(image_features=done, image_features_queued=waiting)
        report.update(zip(("texts_read", "texts_queued"), catalog.texts.text_counts(), strict=True))
        report["failures"] = [
            {"path": os.fsdecode(path), "reason": reason}
            for path, reason in catalog.queue.failures(FAILURES_SHOWN)
        ]
        last = catalog.get_meta("last_reconcile")
        report["last_reconcile"] = json.loads(last) if last else None
        report["index"] = _index_state(settings, catalog.get_meta("dimensions"))
        if report["embedder"]:
            in_base, newer = catalog.reads.vector_counts(
                report["embedder"], report["index"]["base_seq"]
            )
            report["index"].update(vectors=in_base + newer, exact_vectors=newer)
    finally:
        catalog.close()
    return report


def mount_state(settings: Settings) -> dict[str, Any]:
    holder = read_lock_holder(settings)
    if holder is not None and holder.search_dir:
        entry = find_mount(holder.mountpoint)
        mounted = entry is not None and entry.fstype == FSTYPE
        stale = mounted and is_stale(holder.mountpoint)
        return {"active": mounted and not stale, "mountpoint": holder.mountpoint,
                "pid": holder.pid, "stale": stale}  # fmt: skip
    # No daemon holds the lock. If one died without unmounting, its mount is still there,
    # dead, at the mountpoint it wrote into the lock file.
    last = _last_mountpoint(settings)
    entry = find_mount(last) if last else None
    ours = last and entry and entry.fstype == FSTYPE and entry.source == str(settings.store)
    if ours and last and is_stale(last):
        return {"active": False, "mountpoint": last, "pid": None, "stale": True}
    return {"active": False, "mountpoint": None, "pid": None, "stale": False}


def _last_mountpoint(settings: Settings) -> str | None:
    try:
        lines = settings.lock_path.read_text().split("\n")
    except OSError:
        return None
    return lines[1].strip() if len(lines) > 2 and lines[1].startswith("/") else None


def _index_state(settings: Settings, dimensions: str | None) -> dict[str, Any]:
    files = list(settings.index_dir.glob("*"))
    bases = base_files(settings.index_dir, int(dimensions)) if dimensions else []
    newest = bases[-1] if bases else None
    return {
        "vectors": 0,
        "base_vectors": newest[1] if newest else 0,  # in the memory-mapped base index
        # how it is searched: "ivf" (FAISS), or "ann" (an Annoy file: exactly if small)
        "base_format": newest[2].suffix[1:] if newest else None,
        "exact_vectors": 0,  # newer: searched exactly until the next rebuild
        "bytes": sum(base_bytes(p) for p in files),
        "base_file": newest[2].name if newest else None,
        "base_seq": newest[0] if newest else 0,
        "dimensions": int(dimensions) if dimensions else None,
    }


def status_text(report: dict[str, Any]) -> str:
    mount = report["mount"]
    if mount["active"]:
        mounted = f"at {mount['mountpoint']} (pid {mount['pid']})"
    elif mount["stale"]:
        mounted = f"DEAD mount at {mount['mountpoint']}: run semfs unmount --lazy on it"
    else:
        mounted = "no"
    index = report["index"]
    reconciled = report["last_reconcile"]
    lines = [
        f"store:      {report['store']}",
        f"mounted:    {mounted}",
        f"images:     {report['images']}",
        f"indexed:    {report['indexed']}",
        f"queued:     {report['queued']}",
        f"failed:     {report['failed']}",
        f"index:      {index['vectors']} vectors: {index['base_vectors']} in the "
        f"{BASE_NAMES.get(index['base_format'], '')}base ({_size(index['bytes'])}), "
        f"{index['exact_vectors']} searched exactly",
        f"reconciled: {reconciled['summary'] if isinstance(reconciled, dict) else 'never'}",
        f"captioner:  {report['captioner'] or '-'}",
        f"embedder:   {report['embedder'] or '-'}",
        f"similar:    {report['image_features']} images with features for search by example, "
        f"{report['image_features_queued']} waiting",
        f"text:       {report['texts_read']} images read for words (OCR), "
        f"{report['texts_queued']} waiting",
    ]
    lines += [f"  failed: {f['path']}: {f['reason']}" for f in report["failures"]]
    if report["failed"] > len(report["failures"]):
        lines.append(f"  ... and {report['failed'] - len(report['failures'])} more")
    errors = report["recent_errors"] or []
    if errors:
        lines.append(f"last warnings and errors of the daemon ({len(errors)}, newest last):")
        lines += [f"  {e['time']} {e['level']} {e['logger']}: {e['message']}"
                  for e in errors[-ERRORS_SHOWN:]]  # fmt: skip
    if report["schema_version"] is None:
        lines.append("(no catalog yet: the store has not been mounted or indexed)")
    return "\n".join(lines)


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"
