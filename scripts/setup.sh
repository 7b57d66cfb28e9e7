#!/usr/bin/env bash
# Create (or reuse) .venv and install lowrank-edge with the full stack and test tools.
# Usage: bash scripts/setup.sh            (idempotent; a second run is quick)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
echo "[setup] installing lowrank-edge[train,test,dev] (editable)"
.venv/bin/python -m pip install --quiet -e '.[train,test,dev]'
echo "[setup] done: activate with 'source .venv/bin/activate'"
