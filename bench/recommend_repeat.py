"""Does `recommend` name the same file when the same exports are benched again?

Usage (from the repo root, with the project's environment; run it alone on the machine):

    .venv/bin/python bench/recommend_repeat.py models/mnist-job/base models/mnist-job/m0.5 \
        models/mnist-job/m0.33 models/mnist-job/m0.2 --runs 2 \
        --out bench/results/recommend-repeat-mnist

Each run is the main job's closing step (`pipeline.ship.bench_and_recommend`: every exported
variant on LiteRT and ONNX Runtime, 1 thread, batch 32, 5 rounds x 3 repeats, budget 0.5 points)
into OUT/run<i>/bench/. OUT gets command.json, results.json (each run's choice per runtime) and
table.md: per run and runtime the recommended file, its paired speedup over the original float32
with the IQR, and the files tied with it; OUT/run<i>/same-precision.md: every low-rank file
against the original's file in the same precision and runtime (paired), slower cells flagged.
`--recommend-only` re-reads the timings of an earlier run and only recommends again (after a
change to the selection rule).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a bare checkout, before any install
    sys.path.insert(0, str(REPO))

from lowrank_edge.benchmark.reporting.markdown import table_lines  # noqa: E402
from lowrank_edge.benchmark.results.provenance import write_command_json  # noqa: E402
from lowrank_edge.fileio import check_can_write, write_json_atomic, write_text_atomic  # noqa: E402
from lowrank_edge.pipeline.precision_cells import same_precision_cells  # noqa: E402
from lowrank_edge.pipeline.report import (  # noqa: E402
    paired_speedup_text,
    same_precision_section,
)
from lowrank_edge.pipeline.ship import (  # noqa: E402
    BENCH_FOLDER,
    ShipStep,
    bench_and_recommend,
    recommend_bench,
)


def _cell(choice: dict) -> tuple[str, ...]:
    return (
        choice.get("artifact") or f"none ({choice.get('problem')})",
        paired_speedup_text(choice),
        ", ".join(choice.get("tied_with") or []) or "-",
    )


def table(runs: list[dict]) -> str:
    """One row per run and runtime, then whether every run named the same file per runtime."""
    rows, chosen = [], {}
    for index, run in enumerate(runs, start=1):
        for choice in run["conditions"]:
            rows.append((f"run {index}", choice["backend"], *_cell(choice)))
            chosen.setdefault(choice["backend"], set()).add(choice.get("artifact"))
    header = ("run", "runtime", "recommended", "paired speedup [IQR]", "tied with")
    verdict = [
        f"* {backend}: {'the same file in every run' if len(files) == 1 else 'files differ'}"
        f" ({', '.join(sorted(str(f) for f in files))})"
        for backend, files in chosen.items()
    ]
    return "\n".join([*table_lines(header, rows), "", *verdict]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", help="export folders; the first is the original")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument(
        "--recommend-only",
        action="store_true",
        help="re-run only `recommend` on OUT/run<i>/bench (the timings already there)",
    )
    args = parser.parse_args(argv)
    check_can_write(args.out / "results.json", args.overwrite or args.recommend_only)
    write_command_json(args.out, overwrite=args.overwrite or args.recommend_only)
    folders = [Path(m) for m in args.models]
    runs = []
    for index in range(1, args.runs + 1):
        print(f"== run {index} of {args.runs}", flush=True)
        out = args.out / f"run{index}"
        if args.recommend_only:
            runs.append(recommend_bench(out / BENCH_FOLDER, ShipStep()))
        else:
            runs.append(bench_and_recommend(folders, out, ShipStep(), True))
        cells = same_precision_cells(out / BENCH_FOLDER)
        section = same_precision_section({"recommendation": {"same_precision": cells}})
        write_text_atomic(out / "same-precision.md", section + "\n")
        write_json_atomic(args.out / "results.json", {"runs": runs})
    text = table(runs)
    write_text_atomic(args.out / "table.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
