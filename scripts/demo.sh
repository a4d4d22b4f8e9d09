#!/usr/bin/env bash
# Install everything, build a demo store of real sample photos at demo/store and mount it
# at demo/mnt. Run it again at any time: it remounts.
set -euo pipefail

cd -P "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install.sh

step() { printf '\n==> %s\n' "$*"; }

step "demo store at demo/store"
.venv/bin/python scripts/make_demo_store.py demo/store

# An existing semfs mount here (live or dead) is unmounted first. `semfs mount` would
# clean up a dead one by itself, but a live one must be unmounted to remount, and even
# `mkdir -p` fails on a dead one.
if findmnt -n -t fuse.semfs --mountpoint "$(pwd)/demo/mnt" >/dev/null 2>&1; then
    step "unmounting the previous demo mount"
    .venv/bin/semfs unmount demo/mnt || .venv/bin/semfs unmount --lazy demo/mnt
fi

step "mounting demo/store at demo/mnt"
mkdir -p demo/mnt
.venv/bin/semfs mount demo/store demo/mnt

step "ls -R demo/mnt"
ls -R demo/mnt

step "semfs status demo/store"
.venv/bin/semfs status demo/store

cat <<MSG

The demo store is mounted at $(pwd)/demo/mnt. Files you change there land in demo/store.
Unmount with:  .venv/bin/semfs unmount demo/mnt
MSG
