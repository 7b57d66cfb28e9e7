#!/usr/bin/env bash
# The reference model's latency budgets, one pipeline per target runtime (issue 9's targets):
# LiteRT >= 1.6x and ONNX Runtime >= 1.2x, float32, 1 thread, batch 32, from the committed table.
# Usage: python3 bench/time_command.py --out bench/results/latency-pipelines-mnist -- \
#            bash bench/run_latency_pipelines.sh [BASE.keras [TABLE.json [OUT_PREFIX [ARGS...]]]]
# ARGS go to both pipelines (e.g. --finetune-lr 2e-4); RUNTIMES="litert" runs one of them.
set -euo pipefail
BASE=${1:-models/mnist/base.keras}
TABLE=${2:-bench/results/latency-mnist/latency-table.json}
PREFIX=${3:-models/mnist-latency}
shift $(( $# < 3 ? $# : 3 ))
CLI=${LOWRANK_EDGE:-.venv/bin/lowrank-edge}
for runtime in ${RUNTIMES:-litert ort}; do
    case $runtime in
        litert) backend=litert; speedup=1.6 ;;
        ort) backend=onnxruntime; speedup=1.2 ;;
        *) echo "unknown runtime $runtime (litert or ort)" >&2; exit 2 ;;
    esac
    "$CLI" pipeline --dataset mnist --base "$BASE" --out-dir "$PREFIX-$runtime" \
        --target-speedup "$speedup" --latency-table "$TABLE" --backend "$backend" --threads 1 \
        --batch 32 --overwrite "$@"
done
