#!/usr/bin/env bash
# Run one lowrank-edge command as N `--distribute multi-worker` processes on this machine,
# each with its own standard TF_CONFIG (127.0.0.1, ports PORT..PORT+N-1): what N machines
# would run, to try multi-worker before spreading it over machines.
#
# Usage: bash scripts/local-workers.sh N COMMAND [ARGS...]
#   e.g. bash scripts/local-workers.sh 2 compress models/mnist/base.keras --dataset mnist \
#          --target-macs 0.33 --finetune-epochs 2 --distribute multi-worker
# Worker 0 prints to this terminal (and writes the outputs); the others' output goes to
# worker-<i>.log in a temporary folder named at the start. PORT: $LOWRANK_EDGE_PORT or 12345.
# Exits non-zero if any worker failed.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:?usage: bash scripts/local-workers.sh N COMMAND [ARGS...]}
shift
port=${LOWRANK_EDGE_PORT:-12345}
logs=$(mktemp -d -t lowrank-edge-workers-XXXXXX)
echo "[local-workers] $n workers on 127.0.0.1:$port..$((port + n - 1)); worker logs in $logs" >&2
pids=()
for ((i = n - 1; i >= 0; i--)); do
  # the same TF_CONFIG the tests give their workers (lowrank_edge.model.local_workers)
  config=$(.venv/bin/python -c "from lowrank_edge.model.local_workers import tf_config_for
print(tf_config_for(range($port, $port + $n), $i))")
  if ((i == 0)); then
    TF_CONFIG="$config" .venv/bin/lowrank-edge "$@" &
  else
    TF_CONFIG="$config" .venv/bin/lowrank-edge "$@" > "$logs/worker-$i.log" 2>&1 &
  fi
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=$?
done
exit "$status"
