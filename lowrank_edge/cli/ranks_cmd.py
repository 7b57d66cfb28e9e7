"""`lowrank-edge ranks`: a dry run that prints the per-layer rank plan and writes nothing
(unless --plot asks for the error-against-rank curves)."""

from __future__ import annotations

from pathlib import Path

import click

from lowrank_edge.cli.options import (
    DataSource,
    compress_options_from,
    compression_options,
    custom_objects_option,
    data_options,
    energy_option,
    factoriser_options,
    latency_options,
    latency_target_option,
    overwrite_option,
    seed_option,
    target_option,
)
from lowrank_edge.errors import LowrankEdgeError


def plan_table(rows, totals: dict) -> str:
    """The plan as aligned text: one line per layer, then the whole-model totals. The name and
    status columns are as wide as their longest entry (keras.applications names run long)."""
    name_width = max([28, *(len(row.layer) for row in rows)])
    status_width = max([30, *(len(row.status) for row in rows)])
    lines = [
        f"{'layer':{name_width}s} {'status':{status_width}s} {'rank':>9s} {'MACs before':>12s} "
        f"{'MACs after':>12s} {'params after':>12s} {'pred. error':>11s}"
    ]
    for row in rows:
        rank = "–" if row.rank is None else f"{row.rank}/{row.full_rank}"
        error = "–" if row.predicted_error is None else f"{row.predicted_error:.2e}"

        def num(value):
            return "–" if value is None else f"{value:,}"

        lines.append(
            f"{row.layer:{name_width}s} {row.status:{status_width}s} {rank:>9s} "
            f"{num(row.macs_before):>12s} "
            f"{num(row.macs_after):>12s} {num(row.params_after):>12s} {error:>11s}"
        )
    lines.append(
        f"model: MACs {totals['macs_before']:,} -> {totals['macs_after']:,} "
        f"({totals['macs_kept']:.3f} kept), params {totals['params_before']:,} -> "
        f"{totals['params_after']:,} ({totals['params_kept']:.3f} kept)"
    )
    return "\n".join(lines)


def latency_lines(analysis, plan, target) -> str:
    """The table's prediction for the plan and the headroom, e.g. 'can gain at most 1.9x'."""
    from lowrank_edge.errors import LowrankEdgeError
    from lowrank_edge.latency.hardware_cost import headroom
    from lowrank_edge.latency.target import predict_latency

    table, condition = target.load(), target.condition
    limit = headroom(table, analysis, condition)
    fixed = "unknown (no whole-model entry)" if limit.fixed_ms is None else f"{limit.fixed_ms:.3f}"
    try:
        prediction = predict_latency(table, analysis, plan, condition)
        predicted = (
            f"predicted {prediction.dense_ms:.3f} -> {prediction.planned_ms:.3f} ms, "
            f"{prediction.speedup:.2f}x"
        )
    except LowrankEdgeError as error:  # e.g. a MAC budget chose a rank the table lacks
        predicted = f"no prediction for this plan ({error})"
    return "\n".join(
        [
            f"latency on {condition} ({table.where()}): {predicted}; fixed part {fixed} ms",
            f"headroom: this model on this runtime can gain at most {limit.speedup:.2f}x "
            f"(every factorable layer at its cheapest measured option, {limit.best_ms:.3f} ms)",
            "(a dry run: `compress` also measures the model end to end and backs off if slower)",
        ]
    )


@click.command()
@click.argument("model_path", type=click.Path(dir_okay=False, path_type=Path))
@custom_objects_option
@target_option
@latency_target_option
@latency_options
@energy_option
@compression_options
@factoriser_options
@data_options("for the calibration images; needed unless --factoriser svd")
@seed_option("Seed of the train/validation split and of the calibration draw.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the error-against-rank curves with the planned ranks marked (PNG).",
)
@overwrite_option("Replace an existing --plot file instead of refusing.")
def ranks(
    model_path: Path,
    target_macs: float | None,
    target_params: float | None,
    energy: float | None,
    source: DataSource,
    seed: int,
    plot: Path | None,
    overwrite: bool,
    **compression: object,
) -> None:
    """Print the rank plan for MODEL_PATH (.keras): per layer the rank, MACs, params and the
    predicted relative error. Writes nothing unless --plot."""
    from lowrank_edge.compress.preview import plan_rows, plan_totals
    from lowrank_edge.compress.steps import plan_compression
    from lowrank_edge.fileio import check_can_write
    from lowrank_edge.model.saving import load_model
    from lowrank_edge.pipeline.run import DATA_NEEDED

    options = compress_options_from(
        compression, energy=energy, target_macs=target_macs, target_params=target_params, seed=seed
    )
    policy = options.policy()
    if plot is not None:
        check_can_write(plot, overwrite)
    model = load_model(model_path)
    if options.needs_data and source.spec is None:
        raise LowrankEdgeError(DATA_NEEDED)
    data = source.load(seed, model, model_path=model_path) if options.needs_data else None
    calibration, evaluation = options.planning_data(data)
    analysis, plan = plan_compression(
        model, policy, calibration=calibration, evaluation=evaluation, **options.plan_kwargs()
    )
    rows = plan_rows(analysis, plan)
    click.echo(plan_table(rows, plan_totals(analysis, rows)))
    if options.latency is not None:
        click.echo(latency_lines(analysis, plan, options.latency))
    if plot is not None:
        from lowrank_edge.pipeline.plots import rank_curves

        click.echo(f"[ranks] wrote {rank_curves(analysis, plan, plot)}")


COMMANDS = [ranks]
