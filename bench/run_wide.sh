#!/usr/bin/env bash
# The compute-bound model (the reference architecture at widths 64/128/256, issue 9): its
# latency table and headroom, a latency-budget pipeline on LiteRT (target 3x; no fine-tuning:
# one wide epoch takes ~50 min on the 2-core VM), and
# the final model benchmarked end to end on LiteRT and ONNX Runtime, 1 thread, batch 32.
# Train the base first:
#   lowrank-edge train --dataset mnist --widths 64,128,256 --epochs 2 --out models/mnist-wide/base.keras
# Usage: python3 bench/time_command.py --out bench/results/wide-mnist -- bash bench/run_wide.sh
set -euo pipefail
BASE=${1:-models/mnist-wide/base.keras}
OUT=${2:-models/mnist-wide-latency}
CLI=${LOWRANK_EDGE:-.venv/bin/lowrank-edge}
PY=${PYTHON:-.venv/bin/python}
TABLE=bench/results/latency-mnist-wide/latency-table.json
"$PY" bench/latency_headroom.py --model "$BASE" --out bench/results/latency-mnist-wide \
    --batch 32 --overwrite
"$CLI" pipeline --dataset mnist --base "$BASE" --out-dir "$OUT" --target-speedup 3 \
    --latency-table "$TABLE" --backend litert --threads 1 --batch 32 \
    --finetune-epochs 0 --export tflite,onnx --overwrite
"$CLI" bench "$OUT/base" "$OUT/l0.333" --backends litert,onnxruntime --threads 1 --batch 32 \
    --out bench/results/bench-mnist-wide --overwrite
