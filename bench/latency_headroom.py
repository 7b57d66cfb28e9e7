"""The latency table of one model, its cost, and its headroom checked against a measurement.

1. Runs `lowrank-edge latency-table MODEL` (kit built, timed on every backend x threads x
   batch) and records its wall time; then asks the pipeline's cache for the same table and
   records that it was reused.
2. For each --check condition (runtime, threads, batch and precision): the headroom (every
   factorable layer at its cheapest measured option, predicted from the table), then that plan's
   model measured end to end against the original on the same runtime in the same precision
   (interleaved rounds, median of per-round ratios). The CPU features are in command.json.

Usage:
    python bench/latency_headroom.py --model models/mnist/base.keras \\
        --out bench/results/latency-mnist --check litert:1:32,onnxruntime:1:32

Writes latency-table.json, results.json, table.md and command.json into --out (refusing to
replace them without --overwrite).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from lowrank_edge.benchmark.latency_table import Condition  # noqa: E402
from lowrank_edge.benchmark.results.provenance import write_command_json  # noqa: E402
from lowrank_edge.fileio import check_can_write, write_json_atomic, write_text_atomic  # noqa: E402


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="The .keras model.")
    parser.add_argument("--out", type=Path, required=True, help="Results folder.")
    parser.add_argument("--backends", default="litert,onnxruntime")
    parser.add_argument("--threads", default="1")
    parser.add_argument("--batch", default="1,32")
    parser.add_argument(
        "--check",
        default="litert:1:32,onnxruntime:1:32",
        help="Conditions backend:threads:batch[:precision] whose headroom is measured end to "
        "end (precision: float32 unless given; the table is timed in every precision named).",
    )
    parser.add_argument("--overwrite", action="store_true")
    return parser.parse_args(argv)


def conditions(text: str) -> list[Condition]:
    out = []
    for item in text.split(","):
        backend, threads, batch, *precision = item.split(":")
        out.append(Condition(backend, int(threads), int(batch), *precision))
    return out


def cli() -> list[str]:
    found = shutil.which("lowrank-edge", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-c", "from lowrank_edge.cli import main; main()"]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    table_path = args.out / "latency-table.json"
    for name in ("results.json", "table.md", "command.json", "latency-table.json"):
        check_can_write(args.out / name, args.overwrite)
    args.out.mkdir(parents=True, exist_ok=True)
    write_command_json(args.out, overwrite=args.overwrite)

    precisions = ",".join(dict.fromkeys(c.precision for c in conditions(args.check)))
    command = [*cli(), "latency-table", str(args.model), "--backends", args.backends,
               "--threads", args.threads, "--batch", args.batch, "--precision", precisions,
               "--out", str(table_path), "--quiet",
               *(["--overwrite"] if args.overwrite else [])]  # fmt: skip
    print("[latency] " + " ".join(command), flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True)
    table_seconds = time.perf_counter() - start
    print(f"[latency] table in {table_seconds:.0f} s", flush=True)

    from lowrank_edge.compress.analyse import analyse_model
    from lowrank_edge.compress.choose import plan_from_ranks
    from lowrank_edge.latency.hardware_cost import headroom
    from lowrank_edge.latency.speed_check import plan_measurer
    from lowrank_edge.latency.table_cache import ensure_latency_table
    from lowrank_edge.latency.target import LatencyTarget, predict_latency
    from lowrank_edge.model.saving import load_model

    model = load_model(args.model)
    analysis = analyse_model(model)
    checks = conditions(args.check)
    start = time.perf_counter()
    ensure_latency_table(model, LatencyTarget(table_path, *vars(checks[0]).values()))
    reuse_seconds = time.perf_counter() - start

    rows = []
    for condition in checks:
        table = LatencyTarget(table_path, *vars(condition).values()).load()
        limit = headroom(table, analysis, condition)
        ranks = {h.layer: h.best_rank for h in limit.layers if h.best_rank is not None}
        plan = plan_from_ranks(analysis, ranks, {"policy": "headroom"})
        predicted = predict_latency(table, analysis, plan, condition).speedup
        measured = plan_measurer(analysis, condition, log=print)(plan)
        rows.append(
            {
                "condition": vars(condition),
                "headroom_speedup": limit.speedup,
                "predicted_speedup": predicted,
                "measured_speedup": measured.measured,
                "measured_q1": measured.q1,
                "measured_q3": measured.q3,
                "relative_error": limit.speedup / measured.measured - 1.0,
                "ranks": ranks,
                "dense_layers": [h.layer for h in limit.layers if h.best_rank is None],
                "fixed_ms": limit.fixed_ms,
            }
        )
    results = {
        "model": str(args.model),
        "table": str(table_path),
        "table_seconds": table_seconds,
        "reuse_seconds": reuse_seconds,
        "entries": len(LatencyTarget(table_path, *vars(checks[0]).values()).load().entries),
        "checks": rows,
    }
    write_json_atomic(args.out / "results.json", results, overwrite=args.overwrite)
    lines = [
        f"Latency table of `{args.model}`: {results['entries']} entries "
        f"({args.backends}; threads {args.threads}; batch {args.batch}; precisions "
        f"{precisions}) in {table_seconds:.0f} s; "
        f"asked again through the pipeline's cache: reused in {reuse_seconds:.2f} s.",
        "",
        "| condition | headroom (predicted) | measured (q1–q3) | headroom / measured − 1 | "
        "layers kept dense |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        c = row["condition"]
        lines.append(
            f"| {Condition(**c)} | "
            f"{row['headroom_speedup']:.2f}x | {row['measured_speedup']:.2f}x "
            f"({row['measured_q1']:.2f}–{row['measured_q3']:.2f}) | {row['relative_error']:+.1%} | "
            f"{', '.join(row['dense_layers']) or 'none'} |"
        )
    write_text_atomic(args.out / "table.md", "\n".join(lines) + "\n", overwrite=args.overwrite)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
