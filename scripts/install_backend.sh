#!/bin/sh
# Install the MuNet backend (the `munet` command, the server, the shipped network) into a Python 3.11
# virtual environment, created when missing. Run it from a clone of the repository:
#
#   scripts/install_backend.sh VENV_DIR [WHEEL]
#
# WHEEL: a wheel built by `make wheel` (default: build one from this checkout). Installs the wheel with
# the exact pins of constraints.txt, then MediaPipe --no-deps (its declared dependencies pull ~1.5 GB of
# jax that the Pose solution never imports: see requirements-mediapipe.txt). Nothing for training, the
# tests or Blender is installed. Environment: PYTHON (default python3.11) creates the venv;
# TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu) installs torch from that index first.
set -eu

usage="usage: scripts/install_backend.sh VENV_DIR [WHEEL]"
[ $# -ge 1 ] && [ $# -le 2 ] || { echo "$usage" >&2; exit 2; }
REPO=$(cd "$(dirname "$0")/.." && pwd)
VENV=$1
WHEEL=${2:-}
PYTHON=${PYTHON:-python3.11}
PY="$VENV/bin/python"

if [ ! -x "$PY" ]; then
    command -v "$PYTHON" >/dev/null 2>&1 || { echo "install_backend: '$PYTHON' not found. MuNet needs Python 3.11 (MediaPipe 0.10.21 exists for 3.11 only): install it (Debian/Ubuntu: 'sudo apt install python3.11 python3.11-venv'), or set PYTHON=/path/to/python3.11" >&2; exit 1; }
    echo "install_backend: creating the virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
fi
"$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { echo "install_backend: $PY is not Python 3.11: remove $VENV or set PYTHON=python3.11" >&2; exit 1; }
"$PY" -m pip install --quiet --upgrade pip==24.3.1

if [ -z "$WHEEL" ]; then
    echo "install_backend: building the wheel from $REPO"
    # setuptools reuses build/lib: a stale copy there would ship modules deleted since.
    rm -rf "$REPO/build/lib" "$REPO/build/bdist."*
    out=$(mktemp -d)
    "$PY" -m pip wheel --quiet --no-deps -w "$out" "$REPO"
    WHEEL=$(ls "$out"/munet_blender-*.whl)
fi
[ -f "$WHEEL" ] || { echo "install_backend: no wheel at $WHEEL (build one with 'make wheel')" >&2; exit 1; }

if [ -n "${TORCH_INDEX_URL:-}" ]; then
    echo "install_backend: torch from $TORCH_INDEX_URL"
    "$PY" -m pip install --quiet "$(grep '^torch==' "$REPO/constraints.txt")" --index-url "$TORCH_INDEX_URL"
fi
echo "install_backend: installing $(basename "$WHEEL") and its pinned dependencies"
"$PY" -m pip uninstall --quiet --yes munet-blender >/dev/null 2>&1 || true  # same version, new code
"$PY" -m pip install --quiet -c "$REPO/constraints.txt" "$WHEEL"
echo "install_backend: installing MediaPipe (--no-deps)"
"$PY" -m pip install --quiet --no-deps -r "$REPO/requirements-mediapipe.txt"

cat <<EOF
install_backend: done. Next steps:
  $VENV/bin/munet setup                      # build the caches once (~60 s; MUNET_CACHE_DIR moves them)
  $VENV/bin/munet keys ~/.munet/keys         # CURVE key pairs, for a backend reachable beyond this machine
  $VENV/bin/munet serve --bind tcp://0.0.0.0:5555 --curve-keys ~/.munet/keys
EOF
