"""`lowrank-edge latency-kit` and `latency-table`: per-layer latency on the target runtime.

latency-kit (needs TensorFlow) exports micro-models of every factorable layer; latency-table
times them (TF-free for a kit folder; given a .keras model it builds the kit first).
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import click

from lowrank_edge.cli.options import (
    INTS,
    comma_list_option,
    custom_objects_option,
    overwrite_option,
    timing_options,
    timing_policy_from,
)
from lowrank_edge.fileio import check_can_write
from lowrank_edge.runtime.kit_manifest import backend_precisions

KIT_BACKENDS = ("litert", "onnxruntime")
PRECISIONS = ("float32", "float16", "int8-dynamic", "int8-full", "int8-qdq", "all")


def _precisions(values: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """The precisions asked for, `all` spelled out; None when not given."""
    if values is None:
        return None
    return tuple(p for p in PRECISIONS if p != "all") if "all" in values else values


@click.command("latency-kit")
@click.argument("model_path", type=click.Path(dir_okay=False, path_type=Path))
@custom_objects_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Kit folder (kit.json and one .tflite/.onnx pair per micro-model).",
)
@click.option("--opset", default=17, show_default=True, type=int, help="ONNX opset.")
@comma_list_option(
    "--precision",
    "precisions",
    choices=PRECISIONS,
    default="all",
    show_default=True,
    help="Precisions to export each micro-model in besides float32 (TFLite: float16, "
    "int8-dynamic, int8-full; ONNX: int8-qdq, int8-dynamic; int8 calibrated on seeded inputs).",
)
@overwrite_option("Replace an existing kit in --out.")
def latency_kit(
    model_path: Path, out_dir: Path, opset: int, precisions: tuple[str, ...], overwrite: bool
) -> None:
    """Export micro-models of every factorable layer of MODEL_PATH (.keras): the layer alone
    and its factor pair at ranks 1, 2, 4, 8, 16, ... below break-even, plus the whole model,
    in float32 and every other --precision."""
    from lowrank_edge.latency.kit import build_kit

    kit = build_kit(
        model_path, out_dir, overwrite=overwrite, opset=opset, precisions=_precisions(precisions)
    )
    click.echo(f"wrote {kit.path} ({len(kit.entries)} micro-models)")


@click.command("latency-table")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@comma_list_option(
    "--backends",
    choices=KIT_BACKENDS,
    default="litert,onnxruntime",
    show_default=True,
    help="Runtimes to time the micro-models on.",
)
@click.option(
    "--threads", type=INTS, default="1", show_default=True, help="Comma-separated thread counts."
)
@click.option(
    "--batch", "batches", type=INTS, default="1", show_default=True,
    help="Comma-separated batch sizes.",
)  # fmt: skip
@comma_list_option(
    "--precision",
    "precisions",
    choices=PRECISIONS,
    default=None,
    help="Precisions to time (each backend times its own). Default: every precision the kit "
    "holds; all of them when SOURCE is a .keras model.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The latency table to write (JSON).",
)
@overwrite_option("Replace an existing --out table.")
@timing_options(min_runs=20, min_time=0.5, max_time=5.0, rounds=3, repeats=1)
@click.option("--no-xnnpack", is_flag=True, help="LiteRT without the XNNPACK delegate.")
@click.option("--spinning", is_flag=True, help="Let ONNX Runtime's idle threads spin.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the inputs.")
@click.option("--quiet", is_flag=True, help="No progress line.")
def latency_table(source, backends, threads, batches, precisions, out, overwrite, no_xnnpack,
                  spinning, seed, quiet, **timing) -> None:  # fmt: skip
    """Time every micro-model of SOURCE (a kit folder, or a .keras model whose kit is built in
    a temporary folder) on each backend x precision x threads x batch; write the latency
    table, every entry with its precision."""
    from lowrank_edge.benchmark.backends.runtimes import BackendOptions
    from lowrank_edge.benchmark.kit_timing import kit_conditions, measure_kit
    from lowrank_edge.benchmark.latency_table import write_latency_table
    from lowrank_edge.benchmark.reporting.progress import Progress
    from lowrank_edge.runtime.kit_manifest import kit_precisions, load_kit

    from_model = source.is_file() and source.suffix == ".keras"
    kit = None if from_model else load_kit(source)
    defaulted = precisions is None
    if defaulted:
        precisions = ("all",) if kit is None else kit_precisions(kit)
    wanted = _precisions(precisions)
    if defaulted or "all" in precisions:  # of those, what the chosen runtimes have
        wanted = tuple(p for p in wanted if any(p in backend_precisions(b) for b in backends))
    conditions = kit_conditions(backends, threads, batches, wanted)
    policy = timing_policy_from(timing)
    check_can_write(out, overwrite)  # refuse before any work
    options = BackendOptions(use_xnnpack=not no_xnnpack, allow_spinning=spinning)
    progress = Progress(1, enabled=not quiet)

    def measure(kit):
        return measure_kit(kit, conditions, policy, options, seed, progress)

    if kit is None:
        from lowrank_edge.latency.kit import build_kit

        with tempfile.TemporaryDirectory(prefix="lowrank-edge-kit-") as folder:
            built = build_kit(source, Path(folder) / "kit", precisions=wanted, log=_log(quiet))
            table = measure(built)
        table = dataclasses.replace(
            table, kit={**table.kit, "path": None, "built_from": str(source)}
        )
    else:
        table = measure(kit)
    write_latency_table(table, out, overwrite=overwrite)
    failed = [e for e in table.entries if e.p50_ms is None]
    click.echo(
        f"wrote {out}: {len(table.entries) - len(failed)} entries timed, {len(failed)} failed, "
        f"{len(conditions)} condition(s)"
    )
    for entry in failed[:5]:
        click.echo(f"  failed: {entry.key} rank {entry.rank} ({entry.condition}): {entry.error}")


def _log(quiet: bool):
    if quiet:
        return lambda message: None
    from lowrank_edge.logs import log_stderr

    return log_stderr


COMMANDS = [latency_kit, latency_table]
