#!/usr/bin/env bash
# Low-rank x int8 on the reference model (issue 10): export every variant of the original, the
# main job's m0.2 and the two latency-budget models (LiteRT 1.6x, ORT 1.2x), each with its
# whole-test-split accuracy; time LiteRT {float32, float16, int8-dynamic, int8-full} and ORT
# {float32, int8-qdq, int8-dynamic} at 1 thread, batch 32; then ask `recommend` which to ship.
# Usage: python3 bench/time_command.py --out bench/results/int8-sweep-mnist -- bash bench/experiments/int8-sweep/run_int8_sweep.sh
set -euo pipefail
CLI=${LOWRANK_EDGE:-.venv/bin/lowrank-edge}
OUT=${1:-bench/results/int8-sweep-mnist/bench}
EXPORTS=${2:-models/int8-sweep}
declare -A MODELS=(
    [base]=models/mnist/base.keras
    [m0.2]=models/mnist/m0.2.keras
    [lat-litert-1.6]=models/mnist-latency-lr2e-4-litert/l0.625.keras
    [lat-ort-1.2]=models/mnist-latency-ort/l0.833.keras
)
folders=()
for name in base m0.2 lat-litert-1.6 lat-ort-1.2; do
    "$CLI" export "${MODELS[$name]}" --all-variants --dataset mnist --out-dir "$EXPORTS/$name" --overwrite
    folders+=("$EXPORTS/$name")
done
"$CLI" bench "${folders[@]}" --backends litert,onnxruntime \
    --variants float32,float16,int8-dynamic,int8-full,int8-qdq --threads 1 --batch 32 \
    --out "$OUT" --overwrite
"$CLI" recommend "$OUT" --max-accuracy-drop 0.3 --backend litert --threads 1 --batch 32 \
    --out "$OUT/recommend-litert" --overwrite || true
"$CLI" recommend "$OUT" --max-accuracy-drop 0.3 --backend onnxruntime --threads 1 --batch 32 \
    --out "$OUT/recommend-ort" --overwrite || true
