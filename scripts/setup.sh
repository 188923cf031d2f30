#!/usr/bin/env bash
# Set up Miniformer on a fresh Debian machine (Python 3.10+) and run one job:
#
#   scripts/setup.sh train    # venv, CPU PyTorch, the package; then `miniformer train` (the main job)
#   scripts/setup.sh test     # also the test extras and Debian's chromium; then the test suite
#
# Anything after the job name goes to that job (`scripts/setup.sh train --max-steps 100`,
# `scripts/setup.sh test -k sharing`). Safe to run again: the venv, the packages and chromium are reused when
# already there; pip runs only when pyproject.toml or the requested extras changed since the last install.
#
# Knobs: PYTHON (default python3), VENV (default .venv). For a GPU build of PyTorch or no chromium, follow the
# manual steps in the README instead.
set -euo pipefail
cd "$(dirname "$0")/.."

JOB=${1:-}
case "$JOB" in
    train) EXTRAS="viz" ;;
    test) EXTRAS="test" ;;
    *) echo "usage: scripts/setup.sh train|test [arguments for the job]" >&2; exit 2 ;;
esac
shift

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_VERSION=2.13.0

as_root() {
    if [ "$(id -u)" = "0" ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else
        echo "setup: '$*' needs root; run it as root (or install sudo), or do the README's manual steps." >&2
        exit 1
    fi
}

APT_UPDATED=0
apt_install() {
    if [ "$APT_UPDATED" = "0" ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "setup: $PYTHON not found; install Python 3.10+ (apt-get install python3) or set PYTHON=..." >&2
    exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "setup: $("$PYTHON" --version) is too old; Miniformer needs Python 3.10+ (set PYTHON=python3.11 ...)." >&2
    exit 1
fi

# 1. The virtual environment (Debian ships venv's pip bootstrap in a separate package).
if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        echo "setup: installing Debian's python3-venv (for $("$PYTHON" --version))"
        apt_install python3-venv
    fi
    "$PYTHON" -m venv "$VENV"
fi
. "$VENV/bin/activate"

# 2. CPU PyTorch first, so the package's torch requirement does not pull a multi-GB CUDA build; then the package.
STAMP="$VENV/.miniformer-setup-$EXTRAS"
WANTED="torch==$TORCH_VERSION $(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANTED" ]; then
    python -m pip install --quiet --upgrade pip
    if ! python -c "import torch, sys; sys.exit(not torch.__version__.startswith('$TORCH_VERSION'))" 2>/dev/null; then
        python -m pip install --quiet "torch==$TORCH_VERSION"
    fi
    python -m pip install --quiet -e ".[$EXTRAS]"
    echo "$WANTED" > "$STAMP"
else
    echo "setup: $VENV already has torch $TORCH_VERSION and miniformer-hf[$EXTRAS]"
fi

# 3. The job.
if [ "$JOB" = "train" ]; then
    exec miniformer train "$@"
fi

# Headless Chromium for the browser test of the offline attention HTML: Debian's package, never a downloaded browser.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
    echo "setup: installing Debian's chromium"
    apt_install chromium
fi
export HF_HUB_OFFLINE=1
exec python -m pytest -q "$@"
