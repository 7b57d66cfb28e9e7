#!/usr/bin/env bash
# One command: set up the environment, fetch MNIST and run the main job
# (train, compress to 0.5/0.33/0.2 of the MACs with data-aware SVD and budgeted ranks,
# fine-tune, measure, export to TFLite and ONNX with their int8 variants, time every file on
# this machine and end by printing which one to ship).
# Outputs land in models/mnist/. Extra arguments go to `lowrank-edge pipeline`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/lowrank-edge pipeline --dataset mnist --target-macs 0.5,0.33,0.2 \
  --out-dir models/mnist --export tflite,onnx \
  --tflite-variants float32,float16,int8-dynamic,int8-full \
  --onnx-variants float32,int8-qdq,int8-dynamic "$@"
