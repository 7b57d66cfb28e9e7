#!/usr/bin/env bash
# Issue 10's size target: the recommended low-rank + int8 artifact of the reference model is
# <= 10% of the original float32 TFLite file with <= 0.5 points of full-test accuracy lost.
# Reproduces the best combination found (see bench/results/size-target/README.md):
#   1. compress the reference model to a parameter budget (data-aware SVD) and fine-tune it
#      gently (lr 2e-4, 3 epochs);
#   2. export the original's float32 TFLite (the reference size and accuracy), the compressed
#      model's int8 TFLite variants as they are and its TFLite variants with --strip-names (no
#      tensor names or signature defs);
#   3. convert the compressed model to int8-full with per-tensor weight scales, names stripped
#      (bench/size_target.py; no export variant does this yet);
# and prints the table (artifact, bytes, % of the original float32 TFLite, full-test accuracy,
# drop), also written to $OUT/table/size_target.{md,json}.
# Usage: python3 bench/time_command.py --out bench/results/size-target -- bash bench/size_target.sh
# Environment: PYTHON (default .venv/bin/python; this checkout's code is used via PYTHONPATH),
# BASE (default models/mnist/base.keras), TARGET (parameter fraction, default 0.3),
# OUT (default models/size/target; the models and exports, not committed),
# RESULTS (default bench/results/size-target; the table is copied there), MODEL (an already
# compressed and fine-tuned .keras made by step 1's command: skips step 1; its pipeline's
# results.json, if beside it, is copied to $RESULTS/pipeline-results.json).
set -euo pipefail
PY=${PYTHON:-.venv/bin/python}
BASE=${BASE:-models/mnist/base.keras}
TARGET=${TARGET:-0.3}
OUT=${OUT:-models/size/target}
RESULTS=${RESULTS:-bench/results/size-target}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
cli() { "$PY" -c 'import sys; from lowrank_edge.cli import main; sys.argv[0] = "lowrank-edge"; main()' "$@"; }

MODEL=${MODEL:-}
if [[ -z "$MODEL" ]]; then
    cli pipeline --dataset mnist --base "$BASE" --target-params "$TARGET" \
        --finetune-epochs 3 --finetune-lr 2e-4 --out-dir "$OUT/models" --overwrite
    MODEL="$OUT/models/p$TARGET.keras"
fi
stem=$(basename "$MODEL" .keras)
cli export "$BASE" --format tflite --variant float32 --dataset mnist \
    --out-dir "$OUT/original" --overwrite
cli export "$MODEL" --format tflite --variant int8-dynamic,int8-full \
    --dataset mnist --out-dir "$OUT/$stem-named" --overwrite
cli export "$MODEL" --format tflite --variant float32,int8-dynamic,int8-full \
    --strip-names --dataset mnist --out-dir "$OUT/$stem" --overwrite
"$PY" bench/size_target.py --original "$OUT/original" \
    --export "$OUT/$stem-named" --export "$OUT/$stem" \
    --per-tensor "$MODEL" --per-tensor-out "$OUT/$stem-per-tensor" \
    --dataset mnist --out "$OUT/table"
mkdir -p "$RESULTS"
cp "$OUT/table/size_target.md" "$OUT/table/size_target.json" "$RESULTS/"
if [[ -f "$(dirname "$MODEL")/results.json" ]]; then
    cp "$(dirname "$MODEL")/results.json" "$RESULTS/pipeline-results.json"
fi
