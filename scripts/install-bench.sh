#!/usr/bin/env bash
# Install what a target device needs to benchmark exported models: lowrank-edge[bench]
# (numpy, click, onnxruntime, ai-edge-litert - no TensorFlow) into a virtual environment.
# The Dockerfile and CI run this same script.
#
# Usage: bash scripts/install-bench.sh VENV [--python PYTHON] [--full]
#   VENV              virtual environment to create (or reuse), e.g. /opt/venv
#   --python PYTHON   interpreter that creates it (default: $PYTHON or python3)
#   --full            also install .[train] (TensorFlow, Keras, matplotlib): the keras
#                     backend and the plots
# Afterwards: VENV/bin/lowrank-edge bench MODEL_DIR... (see `lowrank-edge bench --help`).
set -euo pipefail

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }

VENV=""
PYTHON_BIN=${PYTHON:-python3}
EXTRAS="bench"
while [ $# -gt 0 ]; do
  case "$1" in
    --python) [ $# -ge 2 ] || usage; PYTHON_BIN=$2; shift 2 ;;
    --full) EXTRAS="bench,train"; shift ;;
    -h|--help) usage 0 ;;
    -*) echo "install-bench: unknown option $1" >&2; usage ;;
    *) [ -z "$VENV" ] || usage; VENV=$1; shift ;;
  esac
done
[ -n "$VENV" ] || usage

ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -x "$VENV/bin/python" ]; then
  echo "[install-bench] creating $VENV with $("$PYTHON_BIN" --version 2>&1)"
  "$PYTHON_BIN" -m venv "$VENV"
fi
echo "[install-bench] installing lowrank-edge[$EXTRAS] from $ROOT"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$ROOT[$EXTRAS]"

"$VENV/bin/lowrank-edge" --version
if [ "$EXTRAS" = "bench" ]; then
  # The bench install must stay TensorFlow-free: a dependency that pulls TF in is a bug.
  if "$VENV/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('tensorflow') is None)"; then
    echo "[install-bench] error: TensorFlow got installed into $VENV by the bench extra" >&2
    exit 1
  fi
fi
echo "[install-bench] done: $VENV/bin/lowrank-edge bench MODEL_DIR..."
