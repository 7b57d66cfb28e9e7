#!/usr/bin/env bash
# ONNX Runtime int8 QDQ of the wide model's low-rank version against its float32 (issue 10's
# target: >= 1.3x), and the original's, 1 thread, batch 32. Needs bench/run_wide.sh's models.
# Usage: python3 bench/time_command.py --out bench/results/wide-int8-ort -- bash bench/experiments/wide-int8/run_wide_int8.sh
set -euo pipefail
CLI=${LOWRANK_EDGE:-.venv/bin/lowrank-edge}
BASE=${1:-models/mnist-wide/base.keras}
LOWRANK=${2:-models/mnist-wide-latency/l0.333.keras}
OUT=${3:-models/wide-int8}
for name in base l0.333; do
    source=$BASE; [ "$name" = base ] || source=$LOWRANK
    "$CLI" export "$source" --format onnx --onnx-variants float32,int8-qdq,int8-dynamic \
        --dataset mnist --out-dir "$OUT/$name" --overwrite
done
"$CLI" bench "$OUT/base" "$OUT/l0.333" --backends onnxruntime \
    --variants float32,int8-qdq,int8-dynamic --threads 1 --batch 32 \
    --out bench/results/wide-int8-ort/bench --overwrite
