#!/usr/bin/env bash
# Issue 10's targets in one run: which file to ship, and is a low-rank + int8 artifact <= 10% of
# the original float32 TFLite file with <= 0.5 points of full-test accuracy lost?
#   1. compress the reference model to a parameter budget (data-aware SVD) and fine-tune it
#      gently (lr 2e-4, 3 epochs) -- skipped when MODEL names an already made one;
#   2. export the original and the compressed model with every variant (TFLite + ONNX), and the
#      compressed model's TFLite files again with --strip-names --per-tensor-weights (the size
#      levers: no tensor names / signature defs, one int8 weight scale per tensor);
#   3. table every TFLite file's bytes, % of the original float32 TFLite and full-test accuracy
#      (bench/experiments/size-target/size_target.py);
#   4. time every file on LiteRT and ONNX Runtime (1 thread, batch 32) and ask `recommend`
#      (budget 0.5 points) for the fastest and the smallest file within budget per runtime.
# Usage: python3 bench/time_command.py --out bench/results/size-target -- bash bench/experiments/size-target/size_target.sh
# Environment: CLI (default .venv/bin/lowrank-edge), BASE (default models/mnist/base.keras),
# TARGET (parameter fraction, default 0.3), OUT (default models/size/target: models and exports,
# not committed), RESULTS (default bench/results/size-target), MODEL (an already compressed and
# fine-tuned .keras made by step 1's command: skips step 1).
set -euo pipefail
CLI=${CLI:-.venv/bin/lowrank-edge}
BASE=${BASE:-models/mnist/base.keras}
TARGET=${TARGET:-0.3}
OUT=${OUT:-models/size/target}
RESULTS=${RESULTS:-bench/results/size-target}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

MODEL=${MODEL:-}
if [[ -z "$MODEL" ]]; then
    "$CLI" pipeline --dataset mnist --base "$BASE" --target-params "$TARGET" \
        --finetune-epochs 3 --finetune-lr 2e-4 --out-dir "$OUT/models" --overwrite
    MODEL="$OUT/models/p$TARGET.keras"
fi
stem=$(basename "$MODEL" .keras)
"$CLI" export "$BASE" --all-variants --dataset mnist --out-dir "$OUT/original" --overwrite
"$CLI" export "$MODEL" --all-variants --dataset mnist --out-dir "$OUT/$stem" --overwrite
"$CLI" export "$MODEL" --format tflite --all-variants --strip-names --per-tensor-weights \
    --dataset mnist --out-dir "$OUT/$stem-small" --overwrite
mkdir -p "$RESULTS"
.venv/bin/python bench/experiments/size-target/size_target.py --original "$OUT/original" \
    --export "$OUT/$stem" --export "$OUT/$stem-small" --out "$RESULTS"
"$CLI" bench "$OUT/original" "$OUT/$stem" "$OUT/$stem-small" --backends litert,onnxruntime \
    --threads 1 --batch 32 --out "$RESULTS/bench" --overwrite
for backend in litert onnxruntime; do
    "$CLI" recommend "$RESULTS/bench" --max-accuracy-drop 0.5 --backend "$backend" \
        --out "$RESULTS/bench/recommend-$backend" --overwrite | tee "$RESULTS/recommend-$backend.txt"
done
