"""Side-by-side comparison of rank-selection methods on one base model, at equal MACs kept.

For each target fraction of MACs and each method it compresses the base model, measures test
accuracy right after compression, fine-tunes (test accuracy after each epoch is logged; early
stopping and the restored weights follow the validation split), and records the MACs and
params actually kept (cost model on the rebuilt model) and the time the compression took.

Methods:
  energy-svd       uniform energy threshold, plain SVD of the kernels (the seed's method);
                   E is searched so the MACs kept are as close as possible below the target
  energy-whitened  uniform output-energy threshold, whitened SVD fitted layer by layer
  budget           budgeted allocation on the whitened error curves, fitted layer by layer
  budget-bn        the same, then BatchNorm statistics re-estimated on the calibration images
  budget-eval      budgeted allocation on measured accuracy drops per layer and candidate rank
                   (1,000 validation images, AIMET-style), fitted layer by layer

Usage:
    python bench/compare_compression.py --base models/mnist/base.keras --dataset mnist \\
        --targets 0.5,0.33,0.2 --finetune-epochs 1 --out bench/results/compare-mnist

Writes results.json, table.md and command.json into --out (refusing to replace them without
--overwrite).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from lowrank_edge.benchmark.reporting.markdown import table_lines  # noqa: E402
from lowrank_edge.benchmark.results.provenance import start_results_folder  # noqa: E402
from lowrank_edge.fileio import write_json_atomic, write_text_atomic  # noqa: E402

METHODS = ("energy-svd", "energy-whitened", "budget", "budget-bn", "budget-eval")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="the base .keras model")
    parser.add_argument("--dataset", default="mnist", choices=("mnist", "emnist"))
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--targets", default="0.5,0.33,0.2", help="fractions of MACs kept")
    parser.add_argument(
        "--budget",
        default="macs",
        choices=("macs", "params"),
        help="what the budget methods' targets are fractions of (energy methods match MACs)",
    )
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--finetune-epochs", type=int, default=1)
    parser.add_argument("--calibration-images", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    args.targets = [float(v) for v in args.targets.split(",") if v.strip()]
    args.methods = [m for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    return args


def energy_for_target(analysis, target: float):
    """The energy E (bisection) whose uniform plan keeps the most MACs not above `target`."""
    from lowrank_edge.compress import EnergyPolicy, choose_ranks
    from lowrank_edge.compress.preview import plan_rows, plan_totals

    def kept(energy: float) -> float:
        plan = choose_ranks(analysis, EnergyPolicy(energy))
        return plan_totals(analysis, plan_rows(analysis, plan))["macs_kept"]

    low, high = 1e-4, 1.0
    for _ in range(40):
        mid = (low + high) / 2
        if kept(mid) <= target:
            low = mid
        else:
            high = mid
    return low


def run_one(model, data, method: str, target: float, args) -> dict:
    """Compress with one method at one target, evaluate, fine-tune; one result row."""
    from lowrank_edge.compress import Budget, EnergyPolicy, analyse_model, compress_model
    from lowrank_edge.compress.calibration import calibration_images
    from lowrank_edge.compress.cost import model_cost
    from lowrank_edge.compress.data_aware import whitened_analysis
    from lowrank_edge.model.train import FitConfig, accuracy, fit

    images = calibration_images(data.x_train, args.calibration_images, args.seed)
    whole = model_cost(model)
    start = time.perf_counter()
    if method.startswith("energy"):
        factoriser = "svd" if method == "energy-svd" else "whitened"
        analysis = analyse_model(model)
        if factoriser == "whitened":
            analysis = whitened_analysis(analysis, images)
        energy = energy_for_target(analysis, target)
        policy, label = EnergyPolicy(energy), f"E={energy:.4f}"
    else:
        factoriser, policy, label = "whitened", Budget(args.budget, target), f"budget {args.budget}"
    evaluation = (data.x_val[:1000], data.y_val[:1000]) if method == "budget-eval" else None
    result = compress_model(
        model,
        policy,
        factoriser=factoriser,
        calibration=images,
        bn_recalibrate=method == "budget-bn",
        evaluation=evaluation,
    )
    seconds = time.perf_counter() - start
    compressed = result.model
    after = model_cost(compressed)
    row = {
        "method": method,
        "setting": label,
        "target_macs": target,
        "macs_kept": after.macs / whole.macs,
        "params_kept": after.params / whole.params,
        "compress_seconds": round(seconds, 1),
        "test_before_finetune": accuracy(compressed, data.x_test, data.y_test),
        "ranks": {r.name: r.rank_kept for r in result.layers if r.factorised},
    }
    if args.finetune_epochs > 0:
        config = FitConfig(
            epochs=args.finetune_epochs,
            learning_rate=1e-3,
            patience=3,
            augment=True,
            balance_classes=True,
            track_test=True,
            keep_start=True,
            verbose=2,
            seed=args.seed,
        )
        history = fit(compressed, data, config).history
        row["test_after_1_epoch"] = history["test_accuracy"][0]
        row["test_at_end"] = accuracy(compressed, data.x_test, data.y_test)
        row["finetune_epochs"] = len(history["test_accuracy"])
    print(
        f"[{method} @ {target}] {label}: MACs {row['macs_kept']:.3f} params "
        f"{row['params_kept']:.3f} test {row['test_before_finetune']:.4f} -> "
        f"{row.get('test_at_end', float('nan')):.4f} ({seconds:.1f} s)",
        flush=True,
    )
    return row


def table(rows: list[dict], base_accuracy: float, budget: str = "macs") -> str:
    header = (
        f"target ({budget})", "method", "setting", "MACs kept", "params kept",
        "test acc. before FT", "after 1 FT epoch", "at the end (epochs)", "compress s",
    )  # fmt: skip
    cells = []
    for r in rows:
        after = f"{r['test_after_1_epoch']:.2%}" if "test_after_1_epoch" in r else "–"
        end = f"{r['test_at_end']:.2%} ({r['finetune_epochs']})" if "test_at_end" in r else "–"
        cells.append(
            (
                f"{r['target_macs']:g}",
                r["method"],
                r["setting"],
                f"{r['macs_kept']:.3f}",
                f"{r['params_kept']:.3f}",
                f"{r['test_before_finetune']:.2%}",
                after,
                end,
                r["compress_seconds"],
            )
        )
    lines = [f"Base model test accuracy: {base_accuracy:.2%}", "", *table_lines(header, cells)]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    start_results_folder(args.out, ("results.json", "table.md"), overwrite=args.overwrite)

    from lowrank_edge.data import load_dataset
    from lowrank_edge.model.saving import load_model
    from lowrank_edge.model.train import accuracy

    data = load_dataset(args.dataset, args.data_dir, seed=args.seed)
    base = load_model(args.base)
    base_accuracy = accuracy(base, data.x_test, data.y_test)
    print(f"[base] {args.base}: test {base_accuracy:.4f}", flush=True)
    rows = []
    for target in args.targets:
        for method in args.methods:
            rows.append(run_one(base, data, method, target, args))
            summary = {"base": str(args.base), "base_test": base_accuracy, "rows": rows}
            write_json_atomic(args.out / "results.json", summary, overwrite=True)
    write_text_atomic(
        args.out / "table.md", table(rows, base_accuracy, args.budget), overwrite=True
    )
    print(table(rows, base_accuracy, args.budget))


if __name__ == "__main__":
    main()
