"""Is XNNPACK's int8 path engaged in LiteRT (ai-edge-litert), and how fast is it here?

Run from the repo root:
    python bench/experiments/int8-xnnpack-probe/int8_xnnpack_probe.py [model_dir] [stem]
Defaults: models/int8-sweep/base base (from bench/experiments/int8-sweep/run_int8_sweep.sh);
1 thread, batch 32,
about 20 s in all. For each TFLite variant (float32, float16, int8-dynamic, int8-full) and
each interpreter setup:
  auto    : Interpreter(num_threads=1), the default and what lowrank-edge uses (XNNPACK)
  latest  : + experimental_default_delegate_latest_features=True
  builtin : experimental_op_resolver_type=BUILTIN_WITHOUT_DEFAULT_DELEGATES (no XNNPACK)
it prints how many of the model's nodes XNNPACK took (built once with
experimental_disable_delegate_node_fusion=True, so every delegated node becomes its own DELEGATE
node; `_get_ops_details` is the interpreter's private op listing) and the median / min ms per
batch-32 invoke. A probe, not a benchmark: the figures are one process's, not interleaved.
"""

import collections
import os
import sys
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

MODEL_DIR = sys.argv[1] if len(sys.argv) > 1 else "models/int8-sweep/base"
STEM = sys.argv[2] if len(sys.argv) > 2 else "base"
VARIANTS = ["float32", "float16", "int8-dynamic", "int8-full"]
BATCH, THREADS, BUDGET_S = 32, 1, 1.2  # per-setup timing budget

SETUPS = {
    "auto": dict(),
    "latest": dict(experimental_default_delegate_latest_features=True),
    "builtin": dict(experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES),
}

samples = np.load(os.path.join(MODEL_DIR, "samples.npz"))["x"][:BATCH].astype(np.float32) / 255.0


def make(path, **kw):
    it = Interpreter(model_path=path, num_threads=THREADS, **kw)
    inp = it.get_input_details()[0]
    it.resize_tensor_input(inp["index"], [BATCH, *inp["shape"][1:]])
    it.allocate_tensors()
    return it


def delegated(path, **kw):
    """(nodes taken by XNNPACK, nodes in the model, op histogram of the model)."""
    it = make(path, experimental_disable_delegate_node_fusion=True, **kw)
    ops = it._get_ops_details()
    c = collections.Counter(o["op_name"] for o in ops)
    n_model = len(ops) - c["DELEGATE"]  # replaced nodes stay listed next to the DELEGATE nodes
    hist = {k: v for k, v in c.items() if k != "DELEGATE"}
    return c["DELEGATE"], n_model, hist


def bench(path, **kw):
    it = make(path, **kw)
    inp = it.get_input_details()[0]["index"]
    out = it.get_output_details()[0]["index"]
    for _ in range(3):
        it.set_tensor(inp, samples)
        it.invoke()
    ts = []
    t_end = time.perf_counter() + BUDGET_S
    while time.perf_counter() < t_end or len(ts) < 5:
        it.set_tensor(inp, samples)
        t0 = time.perf_counter()
        it.invoke()
        ts.append(time.perf_counter() - t0)
    pred = it.get_tensor(out).argmax(-1)
    return 1e3 * float(np.median(ts)), 1e3 * min(ts), len(ts), pred


def main():
    print(f"model dir {MODEL_DIR}; batch {BATCH}; threads {THREADS}")
    ref = {}
    for v in VARIANTS:
        path = os.path.join(MODEL_DIR, f"{STEM}-{v}.tflite")
        if not os.path.exists(path):
            continue
        for name, kw in SETUPS.items():
            n_del, n_model, hist = delegated(path, **kw)
            med, mn, n, pred = bench(path, **kw)
            ref.setdefault(name, med if v == "float32" else None)
            base = ref[name] if ref.get(name) else float("nan")
            agree = (pred == ref_pred).mean() if v != "float32" else 1.0
            print(
                f"{v:13s} {name:8s} xnnpack {n_del:2d}/{n_model:2d} nodes | median {med:7.2f} ms "
                f"min {mn:7.2f} ms (n={n:3d}) | speed vs float32[{name}] {base / med:4.2f}x | "
                f"argmax agree w/ f32 {agree:.2f}",
                flush=True,
            )
            if name == "auto":
                print(f"{'':13s} ops: {hist}", flush=True)
        if v == "float32":
            pass


if __name__ == "__main__":
    ref_pred = None
    p0 = os.path.join(MODEL_DIR, f"{STEM}-float32.tflite")
    ref_pred = bench(p0)[3] if os.path.exists(p0) else None
    main()
