"""Step 2 under a budget: choose every layer's rank at once, not one threshold for all.

Each factorable layer offers options: keep it dense (error 0), or a rank r whose factor pair is
cheaper than the dense layer (the break-even rule is part of the options, and so is rounding:
only multiples of `rounding` are offered). An option has a cost (MACs, params, or any function
of (layer, rank), e.g. measured latency) and an error: the share of the layer's spectrum that
rank r drops, sum_{i>r} s_i^2 / sum s_i^2, its relative output error when the spectrum is the
whitened one. The allocator minimises the (weighted) summed error subject to
total cost <= fraction * the model's cost, exactly, as a multiple-choice knapsack solved by
dynamic programming over the budget in small steps (costs rounded up, so the budget holds),
then it spends what the rounding left on the best single upgrades that still fit.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from lowrank_edge.compress.analyse import ModelAnalysis
from lowrank_edge.compress.choose import RankPlan, plan_from_ranks
from lowrank_edge.compress.cost import model_cost
from lowrank_edge.compress.result import KEPT_BY_BUDGET
from lowrank_edge.compress.spectrum import LayerSpectrum
from lowrank_edge.errors import CompressionError

CostFn = Callable[[LayerSpectrum, "int | None"], float]
BUDGETS = ("macs", "params")


def mac_cost(layer: LayerSpectrum, rank: int | None) -> float:
    """MACs of the layer dense (rank None) or as a factor pair at `rank`."""
    return float(layer.macs if rank is None else layer.macs_at_rank(rank))


def param_cost(layer: LayerSpectrum, rank: int | None) -> float:
    """Weights of the layer dense (rank None) or as a factor pair at `rank`."""
    return float(layer.params if rank is None else layer.params_at_rank(rank))


BUDGET_COSTS: dict[str, CostFn] = {"macs": mac_cost, "params": param_cost}


def relative_error(layer: LayerSpectrum, rank: int | None) -> float:
    """Share of the spectrum's squared energy that rank `rank` drops (0 when dense)."""
    return 0.0 if rank is None else 1.0 - layer.energy_kept(rank, "squared")


@dataclass(frozen=True)
class Option:
    """One choice for one layer: a rank (None: stay dense), its cost and its error."""

    rank: int | None
    cost: float
    error: float


def candidate_ranks(layer: LayerSpectrum, rounding: int | None = None) -> list[int]:
    """Ranks on offer: 1..full rank, or the multiples of `rounding` below it plus full rank."""
    full = layer.full_rank
    if not rounding or rounding <= 1:
        return list(range(1, full + 1))
    return sorted({*range(rounding, full, rounding), full})


def layer_options(
    layer: LayerSpectrum,
    cost: CostFn,
    rounding: int | None = None,
    errors: Mapping[int, float] | None = None,
) -> list[Option]:
    """Dense plus every offered rank whose pair costs less than the dense layer, by cost.

    A cost function withholds a rank by costing it math.inf (e.g. a rank never measured).
    `errors` ({rank: error}, e.g. measured accuracy drops) replaces the spectrum's error curve
    and offers only its ranks.
    """
    dense = Option(None, cost(layer, None), 0.0)
    ranks = candidate_ranks(layer, rounding) if errors is None else sorted(errors)
    costs = {r: cost(layer, r) for r in ranks}
    options = [
        Option(r, c, relative_error(layer, r) if errors is None else float(errors[r]))
        for r, c in costs.items()
        if math.isfinite(c) and c < dense.cost
    ]
    return sorted([*options, dense], key=lambda o: (o.cost, o.error))


def _knapsack(
    options: Mapping[str, list[Option]],
    available: float,
    weights: Mapping[str, float],
    resolution: int,
) -> dict[str, Option] | None:
    """Exact multiple-choice knapsack on costs rounded up to `available / resolution` units
    (so the real total never exceeds `available`); None if nothing fits after rounding."""
    unit = available / resolution
    best = np.full(resolution + 1, np.inf)
    best[0] = 0.0
    choices = []
    for path, opts in options.items():
        weight = weights.get(path, 1.0)
        new = np.full(resolution + 1, np.inf)
        choice = np.full(resolution + 1, -1, dtype=np.int32)
        for index, option in enumerate(opts):
            units = math.ceil(option.cost / unit - 1e-9) if unit > 0 else 0
            if units > resolution:
                continue
            candidate = best[: resolution + 1 - units] + weight * option.error
            better = candidate < new[units:]
            new[units:][better] = candidate[better]
            choice[units:][better] = index
        best = new
        choices.append((path, opts, choice, unit))
    if not np.isfinite(best).any():
        return None
    spent = int(np.argmin(best))
    chosen = {}
    for path, opts, choice, unit in reversed(choices):
        option = opts[int(choice[spent])]
        chosen[path] = option
        spent -= math.ceil(option.cost / unit - 1e-9) if unit > 0 else 0
    return chosen


def allocate(
    options: Mapping[str, list[Option]],
    available: float,
    weights: Mapping[str, float] | None = None,
    resolution: int = 4000,
) -> dict[str, Option]:
    """The option per layer minimising sum(weight * error) with sum(cost) <= `available`.

    An exact dynamic programme over costs in `resolution` steps of the budget (rounded up,
    so the budget holds), then the best single upgrades that still fit spend what the
    rounding left. Raises CompressionError if even the cheapest options do not fit.
    """
    weights = weights or {}
    cheapest = {path: min(opts, key=lambda o: o.cost) for path, opts in options.items()}
    if sum(o.cost for o in cheapest.values()) > available:
        raise CompressionError("the cheapest options exceed the budget")
    chosen = _knapsack(options, available, weights, resolution) or cheapest
    remaining = available - sum(o.cost for o in chosen.values())
    while True:  # spend the rest on the best single upgrade that still fits
        best = None
        for path, opts in options.items():
            current = chosen[path]
            for option in opts:
                step = option.cost - current.cost
                if step <= remaining and option.error < current.error:
                    gain = (
                        weights.get(path, 1.0) * (current.error - option.error) / max(step, 1e-12)
                    )
                    if best is None or gain > best[0]:
                        best = (gain, path, option)
        if best is None:
            return chosen
        _, path, option = best
        remaining -= option.cost - chosen[path].cost
        chosen[path] = option


def check_fraction(fraction: object, budget: str) -> float:
    """A budget fraction must be a number in (0, 1]."""
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, numbers.Real)
        or not math.isfinite(float(fraction))
        or not 0.0 < float(fraction) <= 1.0
    ):
        raise CompressionError(
            f"--target-{budget} must be a fraction in (0, 1] of the model's {budget}, "
            f"got {fraction!r}"
        )
    return float(fraction)


def allocate_ranks(
    analysis: ModelAnalysis,
    fraction: float,
    *,
    budget: str = "macs",
    rounding: int | None = None,
    weights: Mapping[str, float] | None = None,
    errors: Mapping[str, Mapping[int, float]] | None = None,
    cost: CostFn | None = None,
    fixed_cost: float | None = None,
) -> RankPlan:
    """Step 2 under a budget: ranks so the model keeps at most `fraction` of its `budget`.

    `budget` is "macs" or "params" (whole-model totals from the cost model, so layers that
    cannot be factorised count as a fixed part). A custom `cost` (e.g. latency) needs
    `fixed_cost`, the cost of everything the allocation cannot change. `errors` gives a
    layer measured error curves ({rank: error}) in place of its spectrum's.
    """
    if budget not in BUDGETS and cost is None:
        raise CompressionError(f"budget must be one of {BUDGETS}, got {budget!r}")
    fraction = check_fraction(fraction, budget)
    layers = {c.path: c.spectrum for c in analysis.factorable}
    if cost is None:
        cost = BUDGET_COSTS[budget]
        totals = model_cost(analysis.model)
        whole = float(totals.macs if budget == "macs" else totals.params)
        fixed = whole - sum(cost(layer, None) for layer in layers.values())
    else:
        if fixed_cost is None:
            raise CompressionError("a custom cost function needs fixed_cost")
        fixed = float(fixed_cost)
        whole = fixed + sum(cost(layer, None) for layer in layers.values())
    errors = errors or {}
    options = {
        path: layer_options(layer, cost, rounding, errors.get(path))
        for path, layer in layers.items()
    }
    floor = fixed + sum(opts[0].cost for opts in options.values())
    if fraction * whole < floor - 1e-9 * whole:
        raise CompressionError(
            f"--target-{budget} {fraction:g} cannot be met with the layers allowed: the "
            f"smallest reachable fraction is {floor / whole:.4f} (every factorable layer at "
            "its smallest rank)"
            + (
                f": at most {whole / floor:.2f}x faster, the headroom under this condition"
                if budget == "latency" and floor > 0
                else ""
            )
        )
    chosen = allocate(options, fraction * whole - fixed, weights)
    ranks = {path: option.rank for path, option in chosen.items()}
    planned = fixed + sum(option.cost for option in chosen.values())
    settings = {
        "policy": {"type": "BudgetAllocation", "budget": budget, "fraction": fraction},
        "rounding": rounding,
        "break_even": True,
        "planned_fraction": planned / whole if whole else None,
    }
    return plan_from_ranks(analysis, ranks, settings, kept_status=KEPT_BY_BUDGET)
