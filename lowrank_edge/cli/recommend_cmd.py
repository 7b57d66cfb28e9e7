"""`lowrank-edge recommend`: the fastest artifact within an accuracy budget, per condition.

TF-free: reads bench records and manifests only; matplotlib is optional (the plot is skipped).
"""

from __future__ import annotations

import math
from pathlib import Path

import click

from lowrank_edge.benchmark.backends.runtimes import BACKENDS
from lowrank_edge.cli.options import overwrite_option
from lowrank_edge.errors import LowrankEdgeError


@click.command("recommend")
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--max-accuracy-drop",
    type=float,
    required=True,
    help="Accuracy budget: percentage points below the original float32 model (the bench "
    "baseline), e.g. 0.3.",
)
@click.option(
    "--backend", type=click.Choice(BACKENDS), default=None, help="Only this backend's records."
)
@click.option("--threads", type=int, default=None, help="Only records with this thread count.")
@click.option("--batch", type=int, default=None, help="Only records with this batch size.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    show_default="the first bench folder",
    help="Where recommendation.json and pareto.png go.",
)
@overwrite_option("Replace recommendation.json and pareto.png already there.")
def recommend(folders, max_accuracy_drop, backend, threads, batch, out_dir, overwrite) -> None:
    """Pick the fastest exported artifact within an accuracy budget, per device and condition.

    Reads `lowrank-edge bench` result folders and the manifests their records point to; per
    device and condition (backend, threads, batch) prints the fastest artifact whose accuracy is
    at most --max-accuracy-drop points below the original float32 model, its size, speedup and
    accuracy, and the latency/accuracy Pareto front. Writes recommendation.json and pareto.png.
    Exits 1, naming the closest artifact, when none is within the budget.
    """
    from lowrank_edge.benchmark.recommend import recommend as recommend_all
    from lowrank_edge.benchmark.recommend import render_text
    from lowrank_edge.benchmark.recommend_files import (
        check_recommendation_outputs,
        write_recommendation,
    )
    from lowrank_edge.benchmark.recommend_inputs import Filters, group_candidates, read_bench

    if not math.isfinite(max_accuracy_drop) or max_accuracy_drop < 0:
        raise LowrankEdgeError(
            f"--max-accuracy-drop must be a number of percentage points >= 0, "
            f"got {max_accuracy_drop}"
        )
    for name, value in (("--threads", threads), ("--batch", batch)):
        if value is not None and value < 1:
            raise LowrankEdgeError(f"{name} must be >= 1, got {value}")
    first = Path(folders[0])
    out = Path(out_dir) if out_dir else (first if first.is_dir() else first.parent)
    check_recommendation_outputs(out, overwrite)  # refuse before any work

    filters = Filters(backend=backend, threads=threads, batch=batch)
    groups = group_candidates(read_bench(folders), filters)
    result = recommend_all(groups, max_accuracy_drop, [str(f) for f in folders], filters.given())
    click.echo(render_text(result), nl=False)
    refusal = result.refusal()
    if refusal is not None:
        raise LowrankEdgeError(refusal)

    for line in write_recommendation(result, out):
        click.echo(line)


COMMANDS = [recommend]
