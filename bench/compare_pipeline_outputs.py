"""Compare two `lowrank-edge pipeline` output folders: files, per-layer plans and accuracy.

Usage (from the repo root; plain `python3` is enough, it reads JSON only):

    python3 bench/compare_pipeline_outputs.py models/mw/one models/mw/two \
        --out bench/results/distribute-pipeline-mnist/comparison.md

For `--distribute multi-worker` against one process on the same `--base`: the same files
must appear, every compressed model must keep the same rank in every layer, and the accuracy
figures show what distributed fine-tuning changed. Prints the report and writes it (atomically)
when --out is given; exits 1 when the files or plans differ.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a bare checkout, before any install
    sys.path.insert(0, str(REPO))

from lowrank_edge.fileio import write_text_atomic  # noqa: E402
from lowrank_edge.pipeline.outputs import accuracies, output_files, rank_plans  # noqa: E402


def compare(one: Path, two: Path) -> tuple[bool, list[str]]:
    files, plans = (output_files(one), output_files(two)), (rank_plans(one), rank_plans(two))
    same_files, same_plans = files[0] == files[1], plans[0] == plans[1]
    lines = [
        f"# `{one}` (one process) against `{two}`",
        "",
        f"- files: {'the same' if same_files else 'DIFFERENT'} ({len(files[0])} and "
        f"{len(files[1])}){_difference(*files)}",
        f"- per-layer ranks of {', '.join(plans[0]) or 'no model'}: "
        f"{'the same' if same_plans else 'DIFFERENT'}",
        "",
        "| model | val (one) | val (two) | test (one) | test (two) | test difference |",
        "|---|---|---|---|---|---|",
    ]
    first, second = accuracies(one), accuracies(two)
    for name, acc in first.items():
        other = second.get(name, {})
        lines.append(
            f"| {name} | {acc['val']:.4f} | {other.get('val', float('nan')):.4f} | "
            f"{acc['test']:.4f} | {other.get('test', float('nan')):.4f} | "
            f"{other.get('test', float('nan')) - acc['test']:+.4f} |"
        )
    return same_files and same_plans, lines


def _difference(a: set[str], b: set[str]) -> str:
    only = sorted(a ^ b)
    return f"; only in one of them: {', '.join(only[:10])}" if only else ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("one", type=Path)
    parser.add_argument("two", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    same, lines = compare(args.one, args.two)
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        write_text_atomic(args.out, text)
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
