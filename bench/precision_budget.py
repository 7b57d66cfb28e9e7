"""What the latency allocator reaches in each precision, against that precision's headroom.

For every condition of a latency table (runtime, threads, batch, precision) whose headroom is at
least `--min-headroom`, the product's latency budget (`LatencyCheck`: allocation against the
table, then the end-to-end speed check in that precision and the back-off) is asked for
`--share` of the headroom; the model is compressed with plain SVD (latency depends on the
shapes, not the values) and the measured speedup of the plan it keeps is recorded. Conditions
below `--min-headroom` are listed with their headroom: low-rank has nothing to give there.

Usage (run it alone on the machine; the table from `bench/latency_headroom.py`):
    .venv/bin/python bench/precision_budget.py --model models/mnist-job/base.keras \\
        --table bench/results/latency-precision-mnist/latency-table.json \\
        --out bench/results/precision-budget-mnist

Writes results.json, table.md and command.json into --out.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a bare checkout, before any install
    sys.path.insert(0, str(REPO))

from lowrank_edge.benchmark.reporting.markdown import table_lines  # noqa: E402
from lowrank_edge.benchmark.results.provenance import start_results_folder  # noqa: E402
from lowrank_edge.fileio import write_json_atomic, write_text_atomic  # noqa: E402


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--table", type=Path, required=True)
    parser.add_argument("--share", type=float, default=0.9, help="share of the headroom asked")
    parser.add_argument("--min-headroom", type=float, default=1.2)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--overwrite", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    start_results_folder(args.out, ("results.json", "table.md"), overwrite=args.overwrite)

    from lowrank_edge.benchmark.latency_table import load_latency_table
    from lowrank_edge.compress.analyse import analyse_model
    from lowrank_edge.compress.steps import compress_model
    from lowrank_edge.latency.check import LatencyCheck
    from lowrank_edge.latency.hardware_cost import headroom
    from lowrank_edge.latency.target import LatencyTarget
    from lowrank_edge.model.saving import load_model

    model = load_model(args.model)
    analysis = analyse_model(model)
    table = load_latency_table(args.table)
    rows = []
    for condition in table.conditions:
        limit = headroom(table, analysis, condition).speedup
        row = {"condition": vars(condition), "headroom": limit, "target": None, "reached": None}
        if limit >= args.min_headroom:
            target = args.share * limit
            check = LatencyCheck(LatencyTarget(args.table, *vars(condition).values()), 1 / target)
            compress_model(model, check.budget(), review=check.review)
            record = check.record()
            row |= {
                "target": target,
                "predicted": record["predicted_speedup"],
                "reached": record["measured_speedup"],
                "verdict": record["back_off"]["verdict"],
                "share_of_headroom": (record["measured_speedup"] or 0.0) / limit,
            }
        rows.append(row)
        write_json_atomic(args.out / "results.json", {"model": str(args.model), "rows": rows})
        print(row, flush=True)
    header = ("condition", "headroom", "asked", "measured", "share of headroom", "verdict")
    cells = [
        (
            ", ".join(str(v) for v in r["condition"].values()),
            f"{r['headroom']:.2f}x",
            "-" if r["target"] is None else f"{r['target']:.2f}x",
            "-" if r["reached"] is None else f"{r['reached']:.2f}x",
            "-" if r["reached"] is None else f"{r['share_of_headroom']:.0%}",
            r.get("verdict") or f"headroom below {args.min_headroom:g}x: not asked",
        )
        for r in rows
    ]
    text = "\n".join(
        [f"`{args.model}` against `{args.table}`; asked {args.share:g} of each headroom.", "",
         *table_lines(header, cells)]
    )  # fmt: skip
    write_text_atomic(args.out / "table.md", text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
