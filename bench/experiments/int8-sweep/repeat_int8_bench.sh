#!/usr/bin/env bash
# The int8 sweep's bench and recommendations once more, on the same exported files, to see
# whether `recommend` gives the same answer on a repeated run (issue 10's reliability target).
# Usage: python3 bench/time_command.py --out bench/results/int8-sweep-mnist-repeat -- bash bench/experiments/int8-sweep/repeat_int8_bench.sh
set -euo pipefail
CLI=${LOWRANK_EDGE:-.venv/bin/lowrank-edge}
EXPORTS=${1:-models/int8-sweep}
OUT=${2:-bench/results/int8-sweep-mnist-repeat/bench}
"$CLI" bench "$EXPORTS/base" "$EXPORTS/m0.2" "$EXPORTS/lat-litert-1.6" "$EXPORTS/lat-ort-1.2" \
    --backends litert,onnxruntime --variants float32,float16,int8-dynamic,int8-full,int8-qdq \
    --threads 1 --batch 32 --out "$OUT" --overwrite
for backend in litert onnxruntime; do
    "$CLI" recommend "$OUT" --max-accuracy-drop 0.3 --backend "$backend" --threads 1 --batch 32 \
        --out "$OUT/recommend-$backend" --overwrite || true
done
