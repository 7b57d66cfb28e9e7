#!/usr/bin/env bash
# One command: set up the environment, then run the whole test suite.
# Usage: bash scripts/run-tests.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
