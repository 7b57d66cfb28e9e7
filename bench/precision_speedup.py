"""Where low-rank pays, per precision: a model cut to a fraction of every rank, against itself.

For a model (a .keras file, the reference net at widths 64/128/256 with `--wide`, or a
keras.applications model with `--application NAME --size S`, seeded random weights: latency does
not depend on the values), every factorable layer is cut to each `--fractions` share of its full
rank (plain SVD, layers where the pair would cost more MACs stay dense). Then, for every runtime
and precision (LiteRT float32/float16/int8-dynamic/int8-full, ONNX Runtime
float32/int8-qdq/int8-dynamic), the cut model and the original are converted the same way (int8
calibrated on seeded inputs) and timed against each other in interleaved rounds, 1 thread (the
product's speed check: `latency.speed_check`). Each row: the paired speedup (median, IQR), the
theoretical (MAC) speedup and the efficiency (their ratio).

Usage (run it alone on the machine):
    .venv/bin/python bench/precision_speedup.py --wide --batch 32 \\
        --out bench/results/precision-speedup-wide
    .venv/bin/python bench/precision_speedup.py --application MobileNetV2 --size 224 --batch 1 \\
        --out bench/results/precision-speedup-mobilenetv2

Writes results.json (rewritten after every row, so a cut run keeps what it did), table.md and
command.json (with the CPU features) into --out.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a bare checkout, before any install
    sys.path.insert(0, str(REPO))

from lowrank_edge.benchmark.cpu_features import (  # noqa: E402
    cpu_features,
    feature_list,
    precision_advice,
)
from lowrank_edge.benchmark.reporting.markdown import table_lines  # noqa: E402
from lowrank_edge.benchmark.results.provenance import start_results_folder  # noqa: E402
from lowrank_edge.fileio import write_json_atomic, write_text_atomic  # noqa: E402

PRECISIONS = {
    "litert": ("float32", "float16", "int8-dynamic", "int8-full"),
    "onnxruntime": ("float32", "int8-qdq", "int8-dynamic"),
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="a .keras model")
    source.add_argument("--wide", action="store_true", help="the reference net, widths 64/128/256")
    source.add_argument("--application", help="a keras.applications model, e.g. MobileNetV2")
    parser.add_argument("--size", type=int, default=224, help="input size (--application)")
    parser.add_argument("--fractions", default="0.5,0.25", help="shares of every rank kept")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backends", default="litert,onnxruntime")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--overwrite", action="store_true")
    return parser.parse_args(argv)


def build_model(args: argparse.Namespace):
    """The model to cut, with seeded random weights unless loaded from a file."""
    import keras

    keras.utils.set_random_seed(0)
    if args.model is not None:
        from lowrank_edge.model.saving import load_model

        return load_model(args.model)
    if args.wide:
        from lowrank_edge.model.resnet import ResNetConfig, build_mini_resnet

        return build_mini_resnet(ResNetConfig(widths=(64, 128, 256)))
    constructor = getattr(keras.applications, args.application)
    return constructor(weights=None, input_shape=(args.size, args.size, 3))


def describe(args: argparse.Namespace) -> str:
    if args.model is not None:
        return str(args.model)
    if args.wide:
        return "reference net, widths 64/128/256, random weights"
    return f"{args.application} {args.size}x{args.size}, random weights"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    start_results_folder(args.out, ("results.json", "table.md"), overwrite=args.overwrite)

    from lowrank_edge.benchmark.latency_table import Condition
    from lowrank_edge.compress.cost import model_cost
    from lowrank_edge.compress.policies import FractionPolicy
    from lowrank_edge.compress.steps import compress_model
    from lowrank_edge.latency.speed_check import CHECK_POLICY, model_bytes, time_against

    model = build_model(args)
    input_shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    features = cpu_features()
    results = {
        "model": describe(args),
        "input_shape": input_shape,
        "batch": args.batch,
        "threads": args.threads,
        "cpu_features": features,
        "cpu_advice": precision_advice(features),
        "policy": CHECK_POLICY.to_dict(),
        "rows": [],
    }
    cut = {}
    for fraction in (float(f) for f in args.fractions.split(",")):
        compressed = compress_model(model, FractionPolicy(fraction), break_even=True)
        theory = model_cost(model).macs / model_cost(compressed.model).macs
        cut[fraction] = (compressed.model, theory)
        print(f"[cut] {fraction:g} of every rank: {cut[fraction][1]:.2f}x fewer MACs", flush=True)
    for backend in args.backends.split(","):
        for precision in PRECISIONS[backend]:
            condition = Condition(backend, args.threads, args.batch, precision)
            original = model_bytes(model, condition)
            for fraction, (small, theory) in cut.items():
                candidate = model_bytes(small, condition)
                median, q1, q3 = time_against(original, candidate, input_shape, condition)
                row = {
                    "backend": backend,
                    "precision": precision,
                    "fraction": fraction,
                    "speedup": median,
                    "q1": q1,
                    "q3": q3,
                    "theoretical": theory,
                    "efficiency": median / theory,
                    "original_bytes": len(original),
                    "candidate_bytes": len(candidate),
                }
                results["rows"].append(row)
                print(f"[time] {condition}, {fraction:g} of every rank: {median:.2f}x "
                      f"({q1:.2f}-{q3:.2f}), theoretical {theory:.2f}x", flush=True)  # fmt: skip
                write_json_atomic(args.out / "results.json", results)
    header = ("runtime", "precision", "ranks kept", "low-rank speedup [IQR]", "theoretical",
              "efficiency")  # fmt: skip
    rows = [
        (r["backend"], r["precision"], f"{r['fraction']:g}",
         f"{r['speedup']:.2f}x [{r['q1']:.2f}-{r['q3']:.2f}]", f"{r['theoretical']:.2f}x",
         f"{r['efficiency']:.2f}")
        for r in results["rows"]
    ]  # fmt: skip
    text = "\n".join(
        [
            f"{results['model']}, input {input_shape}, batch {args.batch}, {args.threads} "
            f"thread(s); CPU features: {feature_list(features)}.",
            *[f"* {line}." for line in results["cpu_advice"]],
            "",
            *table_lines(header, rows),
        ]
    )
    write_text_atomic(args.out / "table.md", text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
