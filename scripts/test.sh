#!/usr/bin/env bash
# Install (if needed), then lint, type-check and run the test suite. Extra arguments go
# to pytest, e.g. `bash scripts/test.sh -k catalog -x`.
# The tests mount real FUSE filesystems: run as root, with /dev/fuse available.
set -euo pipefail

cd -P "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install.sh

step() { printf '\n==> %s\n' "$*"; }

step "ruff check"
.venv/bin/ruff check semfs tests scripts

step "ruff format --check"
.venv/bin/ruff format --check semfs tests scripts

step "mypy"
.venv/bin/mypy semfs

step "layers: imports point down (scripts/layers.py)"
.venv/bin/python scripts/layers.py

step "pytest"
if [[ $(id -u) -ne 0 ]]; then
    echo "note: not root; tests that mount FUSE filesystems may fail or be skipped" >&2
fi
# The slowest tests are listed at the end: the suite is meant to stay under ~15 minutes.
.venv/bin/python -m pytest -q -p no:cacheprovider --durations=25 "$@"
