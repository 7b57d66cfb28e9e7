"""Measured latency as the allocator's cost: rank -> p50 of that layer's micro-model.

`latency_cost` turns a latency table into a `compress.allocate.CostFn` for one condition
(backend, threads, batch, precision). Only measured ranks are offered: any other rank costs
math.inf, which `layer_options` drops. `headroom` says how fast the model could get at best.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from lowrank_edge.benchmark.latency_table import Condition, LatencyTable
from lowrank_edge.compress.allocate import CostFn, allocate_ranks, layer_options
from lowrank_edge.compress.analyse import ModelAnalysis
from lowrank_edge.compress.choose import RankPlan
from lowrank_edge.compress.spectrum import LayerSpectrum
from lowrank_edge.compress.steps import CostBudget
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.latency.layer_signature import signature_keys
from lowrank_edge.runtime.kit_manifest import model_entry_key


def latency_cost(
    table: LatencyTable, condition: Condition, *, signatures: Mapping[str, Sequence[str]]
) -> CostFn:
    """A CostFn giving a layer's summed p50 (ms) over its calls' signatures at a rank.

    `signatures` maps layer path -> signature keys (`layer_signature.signature_keys`). Every
    layer must have its dense latency measured; a rank not measured costs math.inf.
    """
    table.require([condition])
    for path, keys in signatures.items():
        missing = [key for key in keys if table.p50(key, None, condition) is None]
        if missing:
            raise LowrankEdgeError(
                f"{table.where()}: layer '{path}' ({missing[0]}) has no dense latency under "
                f"{condition}; build a kit from this model and measure it"
            )

    def cost(layer: LayerSpectrum, rank: int | None) -> float:
        if layer.name not in signatures:
            raise LowrankEdgeError(f"{table.where()}: no signature for layer '{layer.name}'")
        values = [table.p50(key, rank, condition) for key in signatures[layer.name]]
        return math.inf if any(v is None for v in values) else float(sum(values))  # type: ignore[arg-type]

    return cost


def fixed_latency(
    table: LatencyTable,
    model_name: str,
    signatures: Mapping[str, Sequence[str]],
    condition: Condition,
) -> float | None:
    """Whole-model p50 minus the factorable layers' dense p50s (>= 0); None if not measured."""
    whole = table.p50(model_entry_key(model_name), None, condition)
    if whole is None:
        return None
    layers = sum(table.p50(k, None, condition) or 0.0 for keys in signatures.values() for k in keys)
    return max(0.0, whole - layers)


@dataclass(frozen=True)
class LayerHeadroom:
    """One layer's dense p50 and its cheapest measured option (rank None: dense is cheapest)."""

    layer: str
    dense_ms: float
    best_rank: int | None
    best_ms: float


@dataclass(frozen=True)
class Headroom:
    """Whole-model latency estimates: all dense vs every layer at its cheapest option."""

    condition: Condition
    layers: tuple[LayerHeadroom, ...]
    fixed_ms: float | None  # whole-model p50 minus the layers' dense p50s; None: not measured

    @property
    def dense_ms(self) -> float:
        """Estimated whole-model p50 with every layer dense (fixed part included when known)."""
        return (self.fixed_ms or 0.0) + sum(h.dense_ms for h in self.layers)

    @property
    def best_ms(self) -> float:
        """Estimated whole-model p50 with every layer at its cheapest measured option."""
        return (self.fixed_ms or 0.0) + sum(h.best_ms for h in self.layers)

    @property
    def speedup(self) -> float:
        """dense_ms / best_ms: the largest speedup rank choice alone can give."""
        return self.dense_ms / self.best_ms if self.best_ms > 0 else math.inf

    def to_dict(self) -> dict:
        """Plain JSON-ready fields and the totals."""
        return {
            "condition": asdict(self.condition),
            "layers": [asdict(h) for h in self.layers],
            "fixed_ms": self.fixed_ms,
            "dense_ms": self.dense_ms,
            "best_ms": self.best_ms,
            "speedup": self.speedup,
        }


def headroom(table: LatencyTable, analysis: ModelAnalysis, condition: Condition) -> Headroom:
    """The whole-model p50 if every factorable layer ran at its cheapest measured rank."""
    keys = signature_keys(analysis)
    cost = latency_cost(table, condition, signatures=keys)
    layers = []
    for candidate in analysis.factorable:
        best = layer_options(candidate.spectrum, cost)[0]
        dense = cost(candidate.spectrum, None)
        layers.append(LayerHeadroom(candidate.path, dense, best.rank, best.cost))
    fixed = fixed_latency(table, analysis.model.name, keys, condition)
    return Headroom(condition, tuple(layers), fixed)


def latency_budget(table: LatencyTable, fraction: float, condition: Condition) -> CostBudget:
    """Keep at most `fraction` of the all-dense predicted latency under `condition`.

    The fixed part (layers the allocation cannot change) is the whole-model entry's share
    when the table has it, else 0: the budget then covers the factorable layers alone.
    """

    def cost_for(analysis: ModelAnalysis) -> tuple[CostFn, float]:
        keys = signature_keys(analysis)
        cost = latency_cost(table, condition, signatures=keys)
        return cost, fixed_latency(table, analysis.model.name, keys, condition) or 0.0

    return CostBudget("latency", fraction, cost_for)


def allocate_for_latency(
    analysis: ModelAnalysis,
    table: LatencyTable,
    fraction: float,
    condition: Condition,
    *,
    rounding: int | None = None,
    weights: Mapping[str, float] | None = None,
) -> RankPlan:
    """Ranks so the estimated p50 is at most `fraction` of the all-dense estimate."""
    cost, fixed = latency_budget(table, fraction, condition).cost_for(analysis)
    return allocate_ranks(
        analysis,
        fraction,
        budget="latency",
        rounding=rounding,
        weights=weights,
        cost=cost,
        fixed_cost=fixed,
    )
