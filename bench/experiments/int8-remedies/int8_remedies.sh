#!/usr/bin/env bash
# Issue 10: does int8 cost a low-rank model more accuracy than the original, and does more
# calibration help? Exports the original, the main job's m0.2 and the LiteRT-budget model
# (l0.625, fine-tuned at 2e-4) as float32 + TFLite int8-full + ONNX int8-qdq, calibrated on
# 200 / 1000 / 5000 training images, and tabulates each artifact's full-test accuracy against
# its own float32 (bench/experiments/int8-remedies/int8_remedies_table.py).
# Usage: python3 bench/time_command.py --out bench/results/int8-remedies -- bash bench/experiments/int8-remedies/int8_remedies.sh
set -euo pipefail
CLI=${LOWRANK_EDGE:-.venv/bin/lowrank-edge}
OUT=${1:-bench/results/int8-remedies}
EXPORTS=${2:-models/int8-remedies}
declare -A MODELS=(
    [base]=models/mnist/base.keras
    [m0.2]=models/mnist/m0.2.keras
    [lat-litert-1.6]=models/mnist-latency-lr2e-4-litert/l0.625.keras
)
folders=()
for count in 200 1000 5000; do
    for name in base m0.2 lat-litert-1.6; do
        "$CLI" export "${MODELS[$name]}" --format tflite,onnx --variant float32,int8-full \
            --onnx-variants float32,int8-qdq --calibration-images "$count" --dataset mnist \
            --out-dir "$EXPORTS/$name-cal$count" --overwrite
        folders+=("$EXPORTS/$name-cal$count")
    done
done
.venv/bin/python bench/experiments/int8-remedies/int8_remedies_table.py "${folders[@]}" --out "$OUT/table.md"
