#!/usr/bin/env bash
# Prove that an export folder runs on a TensorFlow-free device install.
#
# Creates a fresh virtual environment with lowrank-edge[bench] (through install-bench.sh, the
# script the Dockerfile and CI use), checks that `import tensorflow` fails there, then loads the
# folder's manifest, verifies the checksums and predicts the saved samples with every artifact
# through the runtime API, on LiteRT and on ONNX Runtime (the folder must have both formats).
#
# Usage: bash scripts/check-bench-venv.sh EXPORT_DIR [VENV]
#   EXPORT_DIR  a folder written by `lowrank-edge export` (manifest.json, artifacts, samples.npz)
#   VENV        where to create the environment (default: a temporary folder, removed afterwards)
set -euo pipefail

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
case "$1" in -h|--help) usage 0 ;; esac

EXPORT_DIR=$(cd "$1" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
VENV=${2:-$WORK/venv}

bash "$ROOT/scripts/install-bench.sh" "$VENV"

cd "$WORK"  # run outside the source tree: import the installed package, not ./lowrank_edge
if "$VENV/bin/python" -c "import tensorflow" 2>/dev/null; then
  echo "[check-bench-venv] FAIL: tensorflow is importable in $VENV" >&2
  exit 1
fi
echo "[check-bench-venv] ok: 'import tensorflow' fails in $VENV"

"$VENV/bin/python" - "$EXPORT_DIR" <<'EOF'
import sys

import numpy as np

import lowrank_edge
from lowrank_edge.runtime import load_manifest, open_artifact

folder = sys.argv[1]
manifest = load_manifest(folder)
x, y = manifest.load_samples()
print(f"[check-bench-venv] lowrank_edge {lowrank_edge.__version__} from {lowrank_edge.__file__}")
print(f"[check-bench-venv] {manifest.path}: model {manifest.model.name}, {len(x)} samples")
for fmt in ("tflite", "onnx"):
    artifacts = [a for a in manifest.artifacts if a.format == fmt]
    if not artifacts:
        sys.exit(f"[check-bench-venv] FAIL: {folder} has no {fmt} artifact")
    for artifact in artifacts:
        with open_artifact(manifest, artifact.id, threads=1) as runner:
            logits = runner.predict(x)
            single = runner.predict(x[:1])
        if logits.shape != (len(x), manifest.model.num_classes) or not np.isfinite(logits).all():
            sys.exit(f"[check-bench-venv] FAIL: {artifact.id} gave {logits.shape} / non-finite")
        if not np.allclose(single, logits[:1], atol=1e-4):
            sys.exit(f"[check-bench-venv] FAIL: {artifact.id} batch 1 differs from batch {len(x)}")
        accuracy = float(np.mean(logits.argmax(axis=1) == y))
        print(
            f"[check-bench-venv] ok: {artifact.id:22s} {type(runner).__name__:18s} "
            f"accuracy {accuracy:.2%} on the saved samples"
        )
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf2onnx"))
if leaked:
    sys.exit(f"[check-bench-venv] FAIL: imported {leaked}")
print("[check-bench-venv] ok: no TensorFlow, Keras or tf2onnx module was imported")
EOF
