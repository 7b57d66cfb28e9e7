"""Measure a rank plan end to end: its model against the original, on the target runtime.

The plan's model is built with plain SVD factors (latency depends on the layer shapes, not
the weight values), converted to the target's format (TFLite or ONNX) in the target's precision
(float32, float16, int8: the original is converted the same way) and timed
against the original in interleaved rounds with the bench's timing core; the speedup is the
median of the per-round ratios. Used by the back-off loop after allocation.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from lowrank_edge.benchmark.backends.runtimes import FORMAT_OF, RunnerSession
from lowrank_edge.benchmark.latency_table import Condition
from lowrank_edge.benchmark.timing.calls import TimingPolicy
from lowrank_edge.benchmark.timing.interleave import measure_interleaved
from lowrank_edge.benchmark.timing.ratios import per_round_ratios, summarise_ratios
from lowrank_edge.compress.analyse import ModelAnalysis
from lowrank_edge.compress.apply import apply_plan
from lowrank_edge.compress.choose import RankPlan
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.latency.back_off import Measure, SpeedCheck
from lowrank_edge.latency.micro_export import convert, random_inputs
from lowrank_edge.runtime.runner import open_model_bytes

# Long enough for a stable median ratio on a noisy 2-core machine, short enough to repeat.
CHECK_POLICY = TimingPolicy(warmup_runs=5, min_runs=30, min_time_s=3.0, max_time_s=12.0, rounds=6)


def model_bytes(model, condition: Condition, opset: int = 17) -> bytes:
    """`model` converted to the format the condition's backend runs, in its precision (int8
    files calibrated on seeded inputs: the timing does not depend on the values)."""
    input_shape = (None, *(int(d) for d in model.inputs[0].shape[1:]))
    fmt, precision = FORMAT_OF[condition.backend], condition.precision
    with tempfile.TemporaryDirectory(prefix="lowrank-edge-check-") as work:
        return convert(model, input_shape, fmt, opset, Path(work), (precision,))[precision]


def time_against(
    baseline: bytes,
    candidate: bytes,
    input_shape: tuple[int, ...],
    condition: Condition,
    policy: TimingPolicy = CHECK_POLICY,
) -> tuple[float, float, float]:
    """(median, q1, q3) of the per-round speedup p50(baseline) / p50(candidate)."""
    fmt = FORMAT_OF[condition.backend]
    x = random_inputs((None, *input_shape), condition.batch)

    def opener(content: bytes, name: str):
        def open_session() -> RunnerSession:
            runner = open_model_bytes(content, name, fmt, threads=condition.threads)
            return RunnerSession(runner, x)

        return open_session

    measured = measure_interleaved(
        [opener(baseline, "original"), opener(candidate, "candidate")], policy
    )
    for name, measurement in zip(("original", "candidate"), measured, strict=True):
        if not measurement.ok:
            raise LowrankEdgeError(f"timing the {name} on {condition} failed: {measurement.error}")
    summary = summarise_ratios(per_round_ratios(*measured))
    if summary is None:
        raise LowrankEdgeError(f"timing on {condition} gave no complete round")
    return summary.median, summary.q1, summary.q3


def plan_measurer(
    analysis: ModelAnalysis,
    condition: Condition,
    predict: Callable[[RankPlan], float | None] = lambda plan: None,
    policy: TimingPolicy = CHECK_POLICY,
    log: Callable[[str], None] = lambda message: None,
) -> Measure:
    """A `back_off` measure function: plan -> SpeedCheck against the analysed original."""
    original = analysis.model
    input_shape = tuple(int(d) for d in original.inputs[0].shape[1:])
    baseline = model_bytes(original, condition)

    def measure(plan: RankPlan) -> SpeedCheck:
        if plan.ranks:
            candidate = model_bytes(apply_plan(analysis, plan).model, condition)
        else:
            candidate = baseline
        median, q1, q3 = time_against(baseline, candidate, input_shape, condition, policy)
        predicted = predict(plan)
        shown = "" if predicted is None else f", predicted {predicted:.2f}x"
        log(
            f"[latency] {len(plan.ranks)} layers factorised: measured {median:.2f}x "
            f"(q1 {q1:.2f}, q3 {q3:.2f}){shown} on {condition}"
        )
        return SpeedCheck(plan.ranks, median, q1, q3, predicted)

    return measure
