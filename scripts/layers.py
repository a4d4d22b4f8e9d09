"""Print the import graph between semfs's layers and fail on an import that points up.

    python scripts/layers.py             # the graph as text; exit 1 on an upward import
    python scripts/layers.py --mermaid   # the same graph as a Mermaid diagram (for docs)

The layers, lowest first, are LAYERS below. A module may import its own layer and any
layer under it, never one above; `store` imports nothing else of semfs; and only `fs`
and `daemon` may import `fs`. Every import counts: at module level, inside functions,
and under TYPE_CHECKING. The graph comes from grimp, which parses the installed package.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict

import grimp

PACKAGE = "semfs"
# Lowest first. `base` is the modules everything may use (config, errors, the
# package's own __init__, the heap's collector); `cli` is the top, which may use everything.
LAYERS = ["store", "base", "ml", "catalog", "search", "ingest", "fs", "daemon", "commands", "cli"]
BASE_MODULES = {"semfs", "semfs.config", "semfs.errors", "semfs.heap"}
TOP_MODULES = {"semfs.cli", "semfs.__main__"}
FS_IMPORTERS = {"fs", "daemon"}  # the FUSE adapter is private to the mount


def layer_of(module: str) -> str:
    if module in BASE_MODULES:
        return "base"
    if module in TOP_MODULES:
        return "cli"
    layer = module.split(".")[1]
    if layer not in LAYERS:
        raise SystemExit(f"{module}: not in any layer; add its package to LAYERS")
    return layer


def why_refused(importer: str, imported: str) -> str | None:
    """The rule an import between two layers breaks, or None if it keeps them all."""
    if importer == "store" and imported != "store":
        return "store imports nothing else of semfs"
    if imported == "fs" and importer not in FS_IMPORTERS and importer != "fs":
        return "only fs and daemon import fs"
    if LAYERS.index(imported) > LAYERS.index(importer):
        return f"{imported} is above {importer}"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mermaid", action="store_true", help="print a Mermaid diagram")
    arguments = parser.parse_args()

    graph = grimp.build_graph(PACKAGE)
    edges: dict[tuple[str, str], int] = defaultdict(int)
    refusals: list[str] = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            source, target = layer_of(importer), layer_of(imported)
            if source == target:
                continue
            edges[source, target] += 1
            reason = why_refused(source, target)
            if reason is not None:
                for detail in graph.get_import_details(importer=importer, imported=imported):
                    refusals.append(
                        f"{importer}:{detail['line_number']} imports {imported}: {reason}"
                    )

    if arguments.mermaid:
        print("flowchart TD")
        for source, target in sorted(edges, key=_rank):  # no counts: they change daily
            print(f"    {source} --> {target}")
    else:
        for layer in reversed(LAYERS):
            below = [target for (source, target) in sorted(edges, key=_rank) if source == layer]
            print(f"{layer:>9} -> {', '.join(below) if below else '(nothing)'}")
    if refusals:
        print(f"\n{len(refusals)} import(s) against the layers:", file=sys.stderr)
        for line in refusals:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


def _rank(edge: tuple[str, str]) -> tuple[int, int]:
    """Top layers first, and each layer's imports from the highest down."""
    source, target = edge
    return -LAYERS.index(source), -LAYERS.index(target)


if __name__ == "__main__":
    sys.exit(main())
