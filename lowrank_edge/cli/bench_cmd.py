"""`lowrank-edge bench` and `bench-report`: time exported models, merge results into reports.

TF-free at import: the sweep runs on `lowrank-edge[bench]` alone; only the
`keras` backend needs TensorFlow, and it runs in a subprocess.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import click

from lowrank_edge.benchmark.backends.runtimes import BACKENDS
from lowrank_edge.cli.options import INTS, comma_list_option, overwrite_option
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.export.variants import ALL_VARIANTS, ONNX_VARIANTS, TFLITE_VARIANTS
from lowrank_edge.fileio import check_can_write


@click.command("bench")
@click.argument("models", nargs=-1, required=True)
@comma_list_option(
    "--backends",
    choices=BACKENDS,
    default="litert,onnxruntime",
    show_default=True,
    help="Runtimes to time (keras needs the full install).",
)
@comma_list_option(
    "--variants",
    choices=ALL_VARIANTS,
    default=None,
    show_default="every variant the models were exported with",
    help=f"Variants to time: LiteRT runs TFLite's ({', '.join(TFLITE_VARIANTS)}), ONNX Runtime "
    f"ONNX's ({', '.join(ONNX_VARIANTS)}); a backend skips the ones no model has (with a note "
    "when they were asked for by name).",
)
@click.option(
    "--threads", type=INTS, default="1", show_default=True, help="Comma-separated thread counts."
)
@click.option(
    "--batch",
    "batches",
    type=INTS,
    default="1",
    show_default=True,
    help="Comma-separated batch sizes.",
)
@click.option(
    "--baseline",
    default=None,
    show_default="the first model",
    help="Model folder the speedups are relative to.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    show_default="bench/results/<hostname>",
    help="Result folder.",
)
@overwrite_option("Replace results already in --out.")
@click.option(
    "--warmup-runs",
    type=int,
    default=5,
    show_default=True,
    help="Warm-up calls each time a model is opened (per round).",
)
@click.option(
    "--warmup-time",
    type=float,
    default=0.05,
    show_default=True,
    help="Minimum warm-up seconds per open.",
)
@click.option(
    "--min-runs",
    type=int,
    default=50,
    show_default=True,
    help="Minimum timed calls per configuration (split over rounds).",
)
@click.option(
    "--min-time",
    type=float,
    default=2.0,
    show_default=True,
    help="Minimum timed seconds per configuration (split over rounds).",
)
@click.option(
    "--max-time",
    type=float,
    default=20.0,
    show_default=True,
    help="Maximum timed seconds per configuration (split over rounds).",
)
@click.option(
    "--rounds",
    type=int,
    default=5,
    show_default=True,
    help="Interleaved rounds (A B C A B C ...) per configuration.",
)
@click.option(
    "--repeats",
    type=int,
    default=3,
    show_default=True,
    help="Repeat the rounds to report the repeat-to-repeat spread of p50s.",
)
@click.option(
    "--cpus",
    type=INTS,
    default=None,
    help="Pin the benchmark to these CPU ids, e.g. 0 or 0,1 (Linux).",
)
@click.option("--no-xnnpack", is_flag=True, help="LiteRT without the XNNPACK delegate.")
@click.option("--spinning", is_flag=True, help="Let ONNX Runtime's idle threads spin.")
@click.option(
    "--profile",
    is_flag=True,
    help="Also profile ONNX Runtime per layer (profile.jsonl, report section).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the input draw.")
@click.option("--quiet", is_flag=True, help="No progress line.")
def bench(models, backends, variants, threads, batches, baseline, out_dir, overwrite,
          warmup_runs, warmup_time, min_runs, min_time, max_time, rounds, repeats, cpus,
          no_xnnpack, spinning, profile, seed, quiet) -> None:  # fmt: skip
    """Benchmark exported models (their folders with manifest.json) on edge runtimes.

    Times every model x backend x variant x threads x batch, interleaving the models
    in rounds, and writes results.jsonl, results.csv, report.md and plots to --out.
    """
    from lowrank_edge.benchmark.backends.runtimes import BackendOptions
    from lowrank_edge.benchmark.reporting.progress import Progress
    from lowrank_edge.benchmark.results.folder import finish_folder
    from lowrank_edge.benchmark.results.provenance import write_command_json
    from lowrank_edge.benchmark.results.storage import RESULTS_NAME
    from lowrank_edge.benchmark.sweep import SweepConfig, run_sweep
    from lowrank_edge.benchmark.timing.calls import TimingPolicy

    out = Path(out_dir) if out_dir else Path("bench") / "results" / socket.gethostname()
    config = SweepConfig(
        models=tuple(models),
        backends=backends,
        variants=variants or ALL_VARIANTS,
        note_missing=variants is not None,
        threads=threads,
        batches=batches,
        baseline=baseline,
        policy=TimingPolicy(
            warmup_runs=warmup_runs,
            warmup_s=warmup_time,
            min_runs=min_runs,
            min_time_s=min_time,
            max_time_s=max_time,
            rounds=rounds,
            repeats=repeats,
        ),
        options=BackendOptions(use_xnnpack=not no_xnnpack, allow_spinning=spinning),
        cpus=cpus,
        profile=profile,
        seed=seed,
    )
    check_can_write(out / RESULTS_NAME, overwrite)  # refuse before writing anything
    write_command_json(out, overwrite=overwrite)  # command, commit, date, machine
    progress = Progress(1, enabled=not quiet)
    try:
        outcome = run_sweep(config, out, overwrite=overwrite, progress=progress)
    except KeyboardInterrupt:
        if (out / RESULTS_NAME).is_file() and (out / RESULTS_NAME).stat().st_size > 0:
            finish_folder(out)
            click.echo(f"\ninterrupted: results so far are in {out}", err=True)
        sys.exit(130)
    for path in finish_folder(out):
        click.echo(f"wrote {path}")
    click.echo(
        f"{outcome.ok} configuration(s) timed, {outcome.failed} failed ({out / 'report.md'})"
    )
    if outcome.ok == 0:
        raise LowrankEdgeError(f"every configuration failed; see {out / 'report.md'}")


@click.command("bench-report")
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default="bench/report",
    show_default=True,
    help="Where the merged report, CSV and plots go.",
)
@overwrite_option("Replace a report already in --out.")
def bench_report(folders, out_dir, overwrite) -> None:  # fmt: skip
    """Merge result folders (e.g. one per device) into one comparison report."""
    from lowrank_edge.benchmark.results.folder import merge_folders

    for path in merge_folders(folders, out_dir, overwrite=overwrite):
        click.echo(f"wrote {path}")


COMMANDS = [bench, bench_report]
