"""A latency budget with its end-to-end check: allocate from the table, measure, back off.

`LatencyCheck` is what `compress` and the pipeline hand to `compress_model`: `budget()` is
the allocation against the table, `review` (called with the analysis and the plan before
any factor is fitted) measures the plan's model against the original on the target runtime
and backs off until it is not slower, and `record()` is the sidecar's latency section.
"""

from __future__ import annotations

import dataclasses

from lowrank_edge.benchmark.timing.calls import TimingPolicy
from lowrank_edge.compress.analyse import ModelAnalysis
from lowrank_edge.compress.choose import RankPlan
from lowrank_edge.compress.steps import CostBudget
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.latency.back_off import BackOff, back_off, relax
from lowrank_edge.latency.hardware_cost import allocate_for_latency, headroom
from lowrank_edge.latency.target import (
    LATENCY_TABLE_NEEDED,
    LatencyTarget,
    latency_budget,
    latency_record,
    predict_latency,
)
from lowrank_edge.logs import Log, log_stderr


class LatencyCheck:
    """Allocation against one table condition, then the measured back-off (see module)."""

    def __init__(
        self,
        target: LatencyTarget | None,
        fraction: float,
        measure: bool = True,
        max_checks: int = 4,
        log: Log = log_stderr,
        policy: TimingPolicy | None = None,
    ) -> None:
        if target is None:
            raise LowrankEdgeError(LATENCY_TABLE_NEEDED)
        self.target, self.fraction = target, fraction
        self.measure, self.max_checks, self.log = measure, max_checks, log
        self.policy = policy  # None: speed_check.CHECK_POLICY
        self.table = target.load()
        self.analysis: ModelAnalysis | None = None
        self.plan: RankPlan | None = None
        self.back_off: BackOff | None = None

    def budget(self) -> CostBudget:
        """Keep at most `fraction` of the predicted all-dense latency."""
        return latency_budget(self.table, self.fraction, self.target.condition)

    def review(self, analysis: ModelAnalysis, plan: RankPlan) -> RankPlan:
        """Measure `plan` end to end and back off while it is slower or short of its target."""
        condition = self.target.condition
        self.analysis = analysis
        prediction = predict_latency(self.table, analysis, plan, condition)
        self.log(
            f"[latency] planned {len(plan.ranks)} factorisations: predicted "
            f"{prediction.speedup:.2f}x on {condition}"
        )
        if self.measure:
            from lowrank_edge.latency.speed_check import CHECK_POLICY, plan_measurer

            def predict(candidate: RankPlan) -> float:
                return predict_latency(self.table, analysis, candidate, condition).speedup

            policy = self.policy or CHECK_POLICY
            measure = plan_measurer(analysis, condition, predict, policy, log=self.log)
            full = {c.path: c.spectrum.full_rank for c in analysis.factorable}
            plan, self.back_off = back_off(
                plan, prediction.layer_gain_ms, measure, full, 1.0 / self.fraction,
                self.max_checks,
            )  # fmt: skip
            if plan.settings.get("sensitivity") in (None, "none"):  # spectral errors only

                def reallocate(fraction: float) -> RankPlan:
                    looser = allocate_for_latency(
                        analysis, self.table, fraction, condition,
                        rounding=plan.settings.get("rounding"),
                    )  # fmt: skip
                    looser.settings["sensitivity"] = "none"
                    return looser

                plan, self.back_off = relax(plan, self.back_off, self.fraction, reallocate, measure)
            if self.back_off.chosen is None:
                limit = headroom(self.table, analysis, condition).speedup
                verdict = (
                    f"low-rank adds nothing to {condition.precision} on this CPU ({condition}): "
                    f"headroom {limit:.2f}x predicted, no plan measured faster; the original's "
                    "structure is kept"
                )
                self.back_off = dataclasses.replace(self.back_off, verdict=verdict)
            self.log(f"[latency] {self.back_off.verdict}")
        self.plan = plan
        return plan

    def record(self) -> dict:
        """The sidecar's latency section (call after `compress_model` ran `review`)."""
        if self.analysis is None or self.plan is None:
            raise LowrankEdgeError("LatencyCheck.record() before the plan was reviewed")
        record = latency_record(self.table, self.analysis, self.plan, self.target.condition)
        record["target_speedup"] = 1.0 / self.fraction
        record["back_off"] = self.back_off.to_dict() if self.back_off else None
        chosen = self.back_off.chosen if self.back_off else None
        record["measured_speedup"] = (
            self.back_off.checks[chosen].measured if self.back_off and chosen is not None else None
        )
        return record
