"""The benchmark sweep: every model x backend x variant x threads x batch.

Every model in every variant of one condition (backend, threads, batch) is timed in the same
interleaved rounds, so any file's speedup over the original float32 is a paired ratio; each
finished condition appends one record per model and variant to results.jsonl. Anything that goes
wrong for a model or a group is recorded as a failure with its message and the sweep goes on.
"""

from __future__ import annotations

import datetime
import os
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from lowrank_edge.benchmark.backends.inputs import make_batch
from lowrank_edge.benchmark.backends.keras_backend import check_timeout, run_keras_worker
from lowrank_edge.benchmark.backends.runtimes import (
    KERAS_VARIANT,
    BackendOptions,
    artifact_for,
    backend_variants,
    has_artifact,
    missing_runtime,
    parse_backends,
    runtime_opener,
)
from lowrank_edge.benchmark.onnx_graph import OnnxGraph, read_onnx_graph
from lowrank_edge.benchmark.profiling import (
    LayerTimes,
    compare_layers,
    layer_times,
    parse_ort_trace,
)
from lowrank_edge.benchmark.reporting.progress import Progress
from lowrank_edge.benchmark.results.provenance import git_state
from lowrank_edge.benchmark.results.records import (
    REFERENCE_VARIANT,
    GroupContext,
    build_records,
    failure_record,
    spread_warning,
)
from lowrank_edge.benchmark.results.storage import PROFILE_NAME, RESULTS_NAME, JsonlWriter
from lowrank_edge.benchmark.suite import BenchModel, baseline_index, failed_notes, load_models
from lowrank_edge.benchmark.system import available_cpus, pin_cpus, system_facts
from lowrank_edge.benchmark.timing.calls import TimingPolicy, time_calls, warm_up
from lowrank_edge.benchmark.timing.interleave import (
    Measurement,
    describe_error,
    measure_interleaved,
)
from lowrank_edge.benchmark.timing.stats import LatencyStats
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.fileio import check_can_write
from lowrank_edge.runtime.manifest import read_artifact


@dataclass(frozen=True)
class SweepConfig:
    """What to benchmark and how; see `lowrank-edge bench --help` for each option."""

    models: tuple[str, ...]
    backends: tuple[str, ...] = ("litert", "onnxruntime")
    variants: tuple[str, ...] = ("float32",)
    note_missing: bool = True  # note requested variants a backend lacks (off for "every one")
    threads: tuple[int, ...] = (1,)
    batches: tuple[int, ...] = (1,)
    baseline: str | None = None
    policy: TimingPolicy = field(default_factory=TimingPolicy)
    options: BackendOptions = field(default_factory=BackendOptions)
    cpus: tuple[int, ...] | None = None
    profile: bool = False
    seed: int = 0
    keras_timeout_s: float | None = None  # per Keras worker; None: derived from `policy`

    def __post_init__(self) -> None:
        if not self.models:
            raise LowrankEdgeError("give at least one exported model folder to benchmark")
        if not self.threads or not self.batches or not self.variants:
            raise LowrankEdgeError("--threads, --batch and --variants each need at least one value")
        bad = [b for b in self.batches if b < 1]
        if bad:
            raise LowrankEdgeError(f"--batch: batch sizes must be >= 1, got {bad}")
        parse_backends(self.backends)
        check_timeout(self.keras_timeout_s)


@dataclass
class SweepOutcome:
    """Where the results went and how many configurations succeeded or failed."""

    out_dir: Path
    ok: int = 0
    failed: int = 0
    profiled_layers: int = 0


@dataclass
class _Prepared:
    """A model ready to time: its samples, or why it cannot be timed at all."""

    model: BenchModel
    samples: np.ndarray | None
    error: str | None


def _prepare(models: Sequence[BenchModel]) -> list[_Prepared]:
    prepared = []
    for model in models:
        if model.manifest is None:
            prepared.append(_Prepared(model, None, model.error))
            continue
        try:
            prepared.append(_Prepared(model, model.manifest.load_samples()[0], None))
        except LowrankEdgeError as error:
            prepared.append(_Prepared(model, None, describe_error(error)))
    return prepared


def _thread_problem(threads: int) -> str | None:
    if threads < 1:
        return f"thread count must be >= 1, got {threads}"
    return None


def _thread_warnings(threads: int) -> tuple[str, ...]:
    cpus = len(available_cpus())
    if threads > cpus:
        return (f"{threads} threads on {cpus} available CPU(s): threads share cores",)
    return ()


class _Sweep:
    """One sweep's state: models, writers, progress; runs the groups in order."""

    def __init__(self, config: SweepConfig, out_dir: Path, progress: Progress, run: dict):
        self.config, self.out_dir, self.progress, self.run = config, out_dir, progress, run
        self.models = load_models(config.models)
        for line in failed_notes(self.models):
            progress.note(f"note: {line}")
        self.baseline = baseline_index(self.models, config.baseline)
        self.prepared = _prepare(self.models)
        self.backends = parse_backends(config.backends)
        self.outcome = SweepOutcome(out_dir)
        self.results = JsonlWriter(out_dir / RESULTS_NAME)
        self.profiles = JsonlWriter(out_dir / PROFILE_NAME) if config.profile else None

    # -- bookkeeping --------------------------------------------------------------------------
    def plan(self) -> list[tuple[str, str]]:
        """(backend, variant) pairs to run; requested variants a backend lacks are noted."""
        pairs = []
        for backend in self.backends:
            variants = backend_variants(backend, self.config.variants, self.models)
            if not any(m.manifest is not None for m in self.models):
                # nothing loaded: still record each configuration's failure
                variants = [KERAS_VARIANT] if backend == "keras" else list(self.config.variants)
            skipped = [v for v in self.config.variants if v not in variants]
            if skipped and self.config.note_missing:
                self.progress.note(
                    f"note: {backend}: no model has variant(s) {', '.join(skipped)}; skipped"
                )
            pairs.extend((backend, variant) for variant in variants)
        return pairs

    def total_steps(self, pairs: Sequence[tuple[str, str]]) -> int:
        timed = sum(p.error is None for p in self.prepared)
        per_group = timed * self.config.policy.rounds * self.config.policy.repeats
        runnable = [(b, v) for b, v in pairs if missing_runtime(b) is None]
        valid_threads = sum(_thread_problem(t) is None for t in self.config.threads)
        groups = len(runnable) * valid_threads * len(self.config.batches)
        profile = timed if self.config.profile else 0
        onnx_groups = sum(b == "onnxruntime" for b, _ in runnable) * valid_threads
        return groups * per_group + onnx_groups * len(self.config.batches) * profile

    def write(self, records: Sequence[dict]) -> None:
        for record in records:
            self.results.write(record)
            if record["status"] == "ok":
                self.outcome.ok += 1
            else:
                self.outcome.failed += 1
            noisy = spread_warning(record)
            if noisy is not None:
                self.progress.note(f"warning: {noisy}")

    def context(self, backend: str, variant: str, threads: int, batch: int) -> GroupContext:
        return GroupContext(backend, variant, threads, batch, self.run, _thread_warnings(threads))

    def fail_all(self, context: GroupContext, error: str) -> None:
        self.write([failure_record(context, p.model, None, error) for p in self.prepared])

    # -- groups -------------------------------------------------------------------------------
    def run_all(self) -> SweepOutcome:
        pairs = self.plan()
        self.progress.total = max(self.total_steps(pairs), 1)
        by_backend = {backend: [v for b, v in pairs if b == backend] for backend, _ in pairs}
        for backend, variants in by_backend.items():
            missing = missing_runtime(backend)
            for threads in self.config.threads:
                problem = missing or _thread_problem(threads)
                if problem is None and _thread_warnings(threads):
                    self.progress.note(f"warning: {backend}: {_thread_warnings(threads)[0]}")
                if problem is not None:
                    for variant in variants:
                        for batch in self.config.batches:
                            self.fail_all(self.context(backend, variant, threads, batch), problem)
                    continue
                if backend == "keras":
                    for variant in variants:
                        self.keras_groups(variant, threads)
                else:
                    for batch in self.config.batches:
                        self.runtime_condition(backend, variants, threads, batch)
        return self.outcome

    def absent(self, backend: str, variant: str) -> list[bool]:
        """Per model: True when the sweep times every exported variant (none asked for by name)
        and this model was not exported with this one, so it sits the group out."""
        return [
            not self.config.note_missing
            and p.error is None
            and not has_artifact(p.model, backend, variant)
            for p in self.prepared
        ]

    def runtime_condition(
        self, backend: str, variants: Sequence[str], threads: int, batch: int
    ) -> None:
        """Time every model in every variant of one backend/threads/batch in the same interleaved
        rounds, so each file's speedup over the original float32 is a paired ratio."""
        slots: list[tuple[str, int]] = []  # (variant, model index), in timing order
        openers, artifacts, errors, inputs = [], [], [], []
        absent_by_variant = {}
        for variant in variants:
            absent = absent_by_variant[variant] = self.absent(backend, variant)
            if any(absent):
                names = ", ".join(
                    p.model.label for p, out in zip(self.prepared, absent, strict=True) if out
                )
                self.progress.note(f"note: {backend} {variant}: not exported for {names}; skipped")
            for index, (prepared, left_out) in enumerate(zip(self.prepared, absent, strict=True)):
                opener, artifact, error, x = self._opener(prepared, left_out, backend, variant,
                                                          threads, batch)  # fmt: skip
                slots.append((variant, index))
                openers.append(opener)
                artifacts.append(artifact.id if artifact else None)
                errors.append(error)
                inputs.append(x)
        group = f"{backend} threads={threads} batch={batch}"
        n_models = len(self.prepared)
        measurements = measure_interleaved(
            openers, self.config.policy, on_step=self._step_callback(group, slots)
        )
        for index, error in enumerate(errors):
            if error is not None:
                measurements[index] = Measurement(error=error)
        reference = None
        if REFERENCE_VARIANT in variants:
            reference = measurements[variants.index(REFERENCE_VARIANT) * n_models + self.baseline]
        for position, variant in enumerate(variants):
            chunk = slice(position * n_models, (position + 1) * n_models)
            context = self.context(backend, variant, threads, batch)
            records = build_records(
                context, self.models, artifacts[chunk], measurements[chunk], self.baseline,
                reference=reference,
            )  # fmt: skip
            absent = absent_by_variant[variant]
            self.write([r for r, out in zip(records, absent, strict=True) if not out])
            if self.profiles is not None and backend == "onnxruntime":
                self.profile_group(context, artifacts[chunk], inputs[chunk], measurements[chunk])

    def _opener(self, prepared: _Prepared, left_out: bool, backend: str, variant: str,
                threads: int, batch: int):  # fmt: skip
        """(opener, artifact, error, input batch) of one model in one variant."""
        if left_out:
            return None, None, "not exported with this variant", None
        if prepared.error is not None:
            return None, None, prepared.error, None
        try:
            artifact = artifact_for(prepared.model, backend, variant)
            x = make_batch(prepared.samples, batch, self.config.seed)
            opener = runtime_opener(prepared.model, artifact, threads, x, self.config.options)
        except LowrankEdgeError as problem:
            return None, None, describe_error(problem), None
        return opener, artifact, None, x

    def keras_groups(self, variant: str, threads: int) -> None:
        models = [p.model if p.error is None else None for p in self.prepared]

        def on_step(batch: int, index: int, repeat: int, rnd: int) -> None:
            group = f"keras {variant} threads={threads} batch={batch}"
            self._step_callback(group)(index, repeat, rnd)

        setup: dict = {}
        by_batch = run_keras_worker(
            models,
            threads,
            self.config.batches,
            self.config.policy,
            self.config.seed,
            on_step,
            timeout_s=self.config.keras_timeout_s,
            on_setup=setup.update,
        )
        for batch in self.config.batches:
            measurements = by_batch[batch]
            for index, prepared in enumerate(self.prepared):
                if prepared.error is not None:
                    measurements[index] = Measurement(error=prepared.error)
            context = self.context("keras", variant, threads, batch)
            if setup:  # what TF was set to and where it ran, in every Keras record
                context = replace(context, run={**context.run, "keras_worker": setup})
            sources = [
                p.model.manifest.model.source.path if p.model.manifest else None
                for p in self.prepared
            ]
            self.write(build_records(context, self.models, sources, measurements, self.baseline))

    def _step_callback(self, group: str, slots: Sequence[tuple[str, int]] | None = None):
        """Progress per timed step; `slots` maps a position to (variant, model) when the group
        holds several variants."""
        rounds, repeats = self.config.policy.rounds, self.config.policy.repeats

        def on_step(index: int, repeat: int, rnd: int) -> None:
            variant, model = slots[index] if slots is not None else (None, index)
            label = self.models[model].label + (f" {variant}" if variant else "")
            detail = f"| {label} round {rnd + 1}/{rounds}"
            if repeats > 1:
                detail += f" repeat {repeat + 1}/{repeats}"
            self.progress.step(group, detail)

        return on_step

    # -- profiling ----------------------------------------------------------------------------
    def profile_group(self, context: GroupContext, artifacts, inputs, measurements) -> None:
        """Profile each timed model again with ORT's profiler; compare layers with the baseline.

        Kernel times are attributed to layers through each artifact's own ONNX graph and
        calibrated against the p50 the same group just timed without the profiler.
        """
        folder = self.out_dir / "profiles"
        folder.mkdir(parents=True, exist_ok=True)
        times: dict[int, LayerTimes] = {}
        p50_us: dict[int, float] = {}
        budget = self.config.policy.per_round()
        for index, measurement in enumerate(measurements):
            if not measurement.ok:
                continue
            model = self.models[index]
            self.progress.step(
                f"onnxruntime profile threads={context.threads} batch={context.batch}",
                f"| {model.label}",
            )
            prefix = (
                folder
                / f"{_safe(model.label)}-{context.variant}-t{context.threads}-b{context.batch}"
            )
            try:
                artifact = model.manifest.artifact(artifacts[index])
                graph = read_onnx_graph(
                    read_artifact(model.manifest, artifact), f"artifact '{artifact.id}'"
                )
                opener = runtime_opener(
                    model, artifact, context.threads, inputs[index], self.config.options,
                    profile_prefix=str(prefix),
                )  # fmt: skip
                times[index] = _profile_once(opener, budget, graph)
                stats = LatencyStats.from_ns(measurement.pooled_ns(), context.batch)
                p50_us[index] = stats.p50_ms * 1000.0
            except Exception as error:  # a profile that fails is noted, timing results stand
                self.progress.note(
                    f"warning: profiling {model.label} failed: {describe_error(error)}"
                )
        if self.baseline not in times:
            return
        base = self.models[self.baseline]
        for index, model_times in times.items():
            if index == self.baseline:
                continue
            rows = compare_layers(
                times[self.baseline], model_times, p50_us[self.baseline], p50_us[index]
            )
            for row in rows:
                self.profiles.write(
                    {
                        "device": self.run["device"],
                        "run_id": self.run["run_id"],
                        "model": self.models[index].label,
                        "baseline": base.label,
                        "backend": context.backend,
                        "variant": context.variant,
                        "threads": context.threads,
                        "batch": context.batch,
                        "runs": model_times.runs,
                        **row,
                    }
                )
                self.outcome.profiled_layers += 1

    def close(self) -> None:
        self.results.close()
        if self.profiles is not None:
            self.profiles.close()


def _profile_once(opener, budget: TimingPolicy, graph: OnnxGraph) -> LayerTimes:
    """Open a profiling ORT session, warm up, run one round's budget, attribute its trace."""
    session = opener()
    try:
        warmed = warm_up(session.run, budget)
        time_calls(session.run, budget)
        trace_path = session.runner.end_profiling()
    finally:
        session.close()
    return layer_times(*parse_ort_trace(trace_path, skip_runs=warmed), graph)


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)


def run_sweep(
    config: SweepConfig,
    out_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> SweepOutcome:
    """Run the whole sweep into `out_dir` (results.jsonl, and profile.jsonl with profiling).

    Existing results are replaced only with `overwrite`. Records are flushed one by
    one, so an interrupted sweep keeps what it finished.
    """
    out_dir = Path(out_dir)
    results_path = out_dir / RESULTS_NAME
    check_can_write(results_path, overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (RESULTS_NAME, PROFILE_NAME):
        (out_dir / name).unlink(missing_ok=True)
    pinned = pin_cpus(config.cpus) if config.cpus else None
    facts = system_facts()
    run = {
        "run_id": uuid.uuid4().hex[:12],
        "device": out_dir.resolve().name,
        "host": facts["host"],
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpus": facts["affinity"],
        "pinned": pinned is not None,
        "policy": config.policy.to_dict(),
        "options": asdict(config.options),
        "seed": config.seed,
        "system": facts,
        "git": git_state(),  # commit (and dirty tree) of the code that ran
    }
    progress = progress or Progress(1)
    sweep = _Sweep(config, out_dir, progress, run)
    try:
        outcome = sweep.run_all()
    finally:
        sweep.close()
    progress.finish(f"{outcome.ok} configuration(s) timed, {outcome.failed} failed")
    return outcome
