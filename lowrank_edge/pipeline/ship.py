"""The pipeline's last step: time every exported artifact on this machine, then say which to ship.

It runs the same sweep as `lowrank-edge bench` (LiteRT and ONNX Runtime, every variant exported)
into `<out_dir>/bench/`, and the same selection as `lowrank-edge recommend` over it, so the
answer printed at the end of a run is the one those commands would give on these files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lowrank_edge.benchmark.timing.calls import TimingPolicy
from lowrank_edge.logs import Log
from lowrank_edge.pipeline.precision_cells import same_precision_cells

BENCH_FOLDER = "bench"


@dataclass(frozen=True)
class ShipStep:
    """How the closing bench is run and the accuracy budget the recommendation keeps to."""

    max_accuracy_drop: float = 0.5  # percentage points below the original float32 model
    backends: tuple[str, ...] = ("litert", "onnxruntime")
    threads: int = 1
    batch: int = 32
    policy: TimingPolicy = field(default_factory=lambda: TimingPolicy(min_time_s=2.0, repeats=3))
    headroom: bool = True  # then measure low-rank's headroom in the original's fastest precision


def bench_and_recommend(
    folders: Sequence[Path], out_dir: Path, step: ShipStep, overwrite: bool, log: Log = print
) -> dict:
    """Time the export `folders` (the first is the original) into `out_dir/bench/` and recommend.

    Returns a plain record for results.json: where the bench went, and per condition the chosen
    artifact (file, manifest, speedup, size, accuracy drop) or why none qualifies. A refusal is
    reported, not raised: the run itself succeeded.
    """
    from lowrank_edge.benchmark.recommend_files import check_recommendation_outputs
    from lowrank_edge.benchmark.reporting.progress import Progress
    from lowrank_edge.benchmark.results.folder import finish_folder
    from lowrank_edge.benchmark.results.provenance import write_command_json
    from lowrank_edge.benchmark.sweep import SweepConfig, run_sweep
    from lowrank_edge.export.variants import ALL_VARIANTS

    bench = out_dir / BENCH_FOLDER
    check_recommendation_outputs(bench, overwrite)
    config = SweepConfig(
        models=tuple(str(f) for f in folders),
        backends=step.backends,
        variants=ALL_VARIANTS,
        note_missing=False,
        threads=(step.threads,),
        batches=(step.batch,),
        policy=step.policy,
    )
    log(
        f"[bench] timing every exported artifact on this machine ({', '.join(step.backends)}, "
        f"{step.threads} thread(s), batch {step.batch}) -> {bench}/"
    )
    write_command_json(bench, overwrite=True)  # the pipeline's command line, commit, machine
    outcome = run_sweep(config, bench, overwrite=overwrite, progress=Progress(1, enabled=False))
    finish_folder(bench)
    log(f"[bench] {outcome.ok} configuration(s) timed, {outcome.failed} failed ({bench}/report.md)")

    cells = same_precision_cells(bench)
    slower = [c for c in cells if c["slower"]]
    log(
        f"[bench] low-rank against the original in the same precision: {len(slower)} of "
        f"{len(cells)} file(s) slower"
        + "".join(f"\n[bench]   {c['model']} {c['backend']} {c['variant']}: "
                  f"{c['speedup']:.2f}x ({c['reason']})" for c in slower)
    )  # fmt: skip
    return {
        "bench_dir": str(bench),
        "timed": outcome.ok,
        "failed": outcome.failed,
        "same_precision": cells,
        **recommend_bench(bench, step, log),
    }


def recommend_bench(bench: Path, step: ShipStep, log: Log = print) -> dict:
    """`recommend` over the bench folder `bench` with the step's budget and condition; writes
    recommendation.json there (replacing it) and returns the choices for results.json."""
    from lowrank_edge.benchmark.recommend import recommend, render_text
    from lowrank_edge.benchmark.recommend_files import write_recommendation
    from lowrank_edge.benchmark.recommend_inputs import Filters, group_candidates, read_bench

    filters = Filters(threads=step.threads, batch=step.batch)
    result = recommend(
        group_candidates(read_bench([bench]), filters),
        step.max_accuracy_drop,
        [str(bench)],
        filters.given(),
    )
    log("[recommend] which file to ship on this machine:")
    log(render_text(result).rstrip("\n"))
    refusal = result.refusal()
    if refusal is not None:
        log(f"[recommend] {refusal}")
    for line in write_recommendation(result, bench):
        log(f"[recommend] {line}")
    return {
        "max_accuracy_drop_pp": step.max_accuracy_drop,
        "conditions": [_choice(c) for c in result.conditions],
    }


def _file_facts(entry) -> dict:
    """What the report says of a chosen file: which, where, how big, how fast, how accurate."""
    return {
        "artifact": entry.label,
        "file": entry.candidate.path,
        "manifest": entry.candidate.manifest,
        "bytes": entry.candidate.bytes,
        "speedup": entry.speedup,
        "speedup_kind": entry.speedup_kind,
        "speedup_iqr": _iqr(entry.candidate.paired),
        "drop_pp": entry.drop_pp,
    }


def _iqr(paired) -> dict | None:
    """The paired speedup's interquartile range and how many rounds it pools."""
    if paired is None:
        return None
    return {"q1": paired.q1, "q3": paired.q3, "rounds": paired.rounds}


def _choice(result) -> dict:
    """One condition's answer, as the pipeline's report shows it."""
    condition = result.condition
    record = {
        "backend": condition.backend,
        "threads": condition.threads,
        "batch": condition.batch,
        "machine": condition.machine,
        "problem": result.problem,
    }
    if result.winner is not None:
        record.update(
            _file_facts(result.winner),
            tie_within_spread=result.tie,
            tied_with=[e.label for e in result.tied],
            runner_up=result.runner_up.label if result.runner_up else None,
        )
    if result.smallest is not None:
        record["smallest"] = _file_facts(result.smallest)
    return record
