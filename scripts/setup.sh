#!/usr/bin/env bash
# One idempotent set-up step: .venv with Python 3.11, torch, detectron2 (only if missing),
# and this package editable with its test extra. A second run returns in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
VENV="${VENV:-.venv}"
TORCH_VERSION="2.14.1"
TORCHVISION_VERSION="0.29.1"
D2_WHEEL="sal-detectron2==0.7.2"

# The stamp records what this set-up installed from; when it matches, nothing is done.
stamp_inputs() { cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1; }
STAMP="$VENV/.pixelclip-setup"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(stamp_inputs)" ]] && "$VENV/bin/python" -c "import pixelclip" 2>/dev/null; then
  echo "[setup] $VENV is up to date"
  exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "[setup] creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check -q)

"${PIP[@]}" install --upgrade "pip>=24" wheel setuptools
echo "[setup] installing torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION"
"${PIP[@]}" install "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"

# Detectron2 has no official wheel on the registry. If it is importable (a source build), leave it.
if "$PY" -c "import detectron2" 2>/dev/null; then
  echo "[setup] detectron2 already importable: left as it is"
else
  SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "[setup] installing detectron2 sources from $D2_WHEEL into $SITE"
  "${PIP[@]}" install --target "$SITE" --python-version 3.10 --only-binary=:all: --no-deps \
    --upgrade "$D2_WHEEL"
  # The wheel also drops a top-level 'tools' package that would shadow this repository's tools/.
  rm -rf "$SITE/tools"
fi

echo "[setup] installing pixelclip (editable) with its test extra"
"${PIP[@]}" install -e ".[test]"
"$PY" -c "import detectron2, open_clip, pixelclip; print('[setup] ok: detectron2', detectron2.__version__, 'open_clip', open_clip.__version__)"
stamp_inputs > "$STAMP"
