"""A latency target: a latency table and the condition to allocate for, as a compression budget.

`latency_budget` turns "keep `fraction` of the predicted latency" into a `CostBudget` the
allocator understands (measured ranks only; a slower factorisation is never cheaper, so it is
never chosen). `predict_latency` says what the table predicts for a plan, and `latency_record`
is what the compression sidecar stores: the table, its condition and device, the prediction.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from lowrank_edge.benchmark.latency_table import (
    REFERENCE_PRECISION,
    Condition,
    LatencyTable,
    load_latency_table,
)
from lowrank_edge.compress.analyse import ModelAnalysis
from lowrank_edge.compress.choose import RankPlan
from lowrank_edge.compress.steps import CostBudget
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.fileio import sha256_file
from lowrank_edge.latency.hardware_cost import (
    fixed_latency,
    headroom,
    latency_budget,
    latency_cost,
)
from lowrank_edge.latency.layer_signature import signature_keys

LATENCY_TABLE_NEEDED = (
    "--target-speedup and --target-latency need --latency-table (and --backend, --threads, "
    "--batch naming one of its conditions); measure one with `lowrank-edge latency-table`"
)


@dataclass(frozen=True)
class LatencyTarget:
    """Which table to allocate from, and which of its conditions is the target."""

    table: Path
    backend: str = "litert"
    threads: int = 1
    batch: int = 32
    precision: str = REFERENCE_PRECISION

    @property
    def condition(self) -> Condition:
        """The (backend, threads, batch, precision) the ranks are chosen for."""
        return Condition(self.backend, self.threads, self.batch, self.precision)

    def load(self) -> LatencyTable:
        """The table, refused unless it measured this condition (warns on another device)."""
        return load_latency_table(self.table, [self.condition])

    def budget(self, fraction: float) -> CostBudget:
        """A latency budget whose table is read only when the allocator asks for costs."""

        def cost_for(analysis: ModelAnalysis):
            return latency_budget(self.load(), fraction, self.condition).cost_for(analysis)

        return CostBudget("latency", fraction, cost_for)


@dataclass(frozen=True)
class LatencyPrediction:
    """The table's whole-model p50 estimates (ms) for a plan and for the all-dense model."""

    condition: Condition
    dense_ms: float
    planned_ms: float
    fixed_ms: float | None  # the part no layer choice changes; None: no whole-model entry
    layer_gain_ms: dict[str, float]  # factorised layer path -> dense p50 minus its pair's p50

    @property
    def speedup(self) -> float:
        """dense_ms / planned_ms: the predicted whole-model speedup."""
        return self.dense_ms / self.planned_ms if self.planned_ms > 0 else math.inf


def predict_latency(
    table: LatencyTable, analysis: ModelAnalysis, plan: RankPlan, condition: Condition
) -> LatencyPrediction:
    """What the table predicts for `plan` (a rank it has not measured is an error)."""
    keys = signature_keys(analysis)
    cost = latency_cost(table, condition, signatures=keys)
    fixed = fixed_latency(table, analysis.model.name, keys, condition)
    dense = planned = fixed or 0.0
    gains = {}
    for candidate in analysis.factorable:
        rank = plan.ranks.get(candidate.path)
        dense_ms = cost(candidate.spectrum, None)
        planned_ms = cost(candidate.spectrum, rank)
        if not math.isfinite(planned_ms):
            raise LowrankEdgeError(
                f"{table.where()}: layer '{candidate.path}' has no measurement at rank {rank} "
                f"under {condition}"
            )
        dense += dense_ms
        planned += planned_ms
        if rank is not None:
            gains[candidate.path] = dense_ms - planned_ms
    return LatencyPrediction(condition, dense, planned, fixed, gains)


def latency_record(
    table: LatencyTable, analysis: ModelAnalysis, plan: RankPlan, condition: Condition
) -> dict:
    """The sidecar's latency section: table, condition, device, prediction and headroom."""
    prediction = predict_latency(table, analysis, plan, condition)
    limit = headroom(table, analysis, condition)
    return {
        "table": str(table.path) if table.path else None,
        "table_sha256": sha256_file(table.path) if table.path else None,
        "condition": asdict(condition),
        "device": {k: table.device.get(k) for k in ("host", "cpu_model", "cpu_count", "machine")},
        "created": table.created,
        "predicted_dense_ms": prediction.dense_ms,
        "predicted_ms": prediction.planned_ms,
        "fixed_ms": prediction.fixed_ms,
        "predicted_speedup": prediction.speedup,
        "layer_gain_ms": prediction.layer_gain_ms,
        "headroom_speedup": limit.speedup,
    }
