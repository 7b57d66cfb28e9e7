#!/usr/bin/env bash
# The reference model's latency budgets, one pipeline per target runtime (issue 9's targets):
# LiteRT >= 1.6x and ONNX Runtime >= 1.2x, float32, 1 thread, batch 32, from the committed table.
# Usage: python3 bench/time_command.py --out bench/results/latency-pipelines-mnist -- \
#            bash bench/run_latency_pipelines.sh [BASE.keras] [TABLE.json] [OUT_PREFIX]
set -euo pipefail
BASE=${1:-models/mnist/base.keras}
TABLE=${2:-bench/results/latency-mnist/latency-table.json}
PREFIX=${3:-models/mnist-latency}
CLI=${LOWRANK_EDGE:-.venv/bin/lowrank-edge}
"$CLI" pipeline --dataset mnist --base "$BASE" --out-dir "$PREFIX-litert" --target-speedup 1.6 \
    --latency-table "$TABLE" --backend litert --threads 1 --batch 32 --overwrite
"$CLI" pipeline --dataset mnist --base "$BASE" --out-dir "$PREFIX-ort" --target-speedup 1.2 \
    --latency-table "$TABLE" --backend onnxruntime --threads 1 --batch 32 --overwrite
