"""Step 2 of 3, choose ranks: turn a `ModelAnalysis` into a `RankPlan`, one decision a layer.

`choose_ranks` asks a per-layer `RankPolicy` for each factorable layer, then caps, rounds and
applies the break-even rule (`rank_steps`). A budget allocator that sees all layers at once
builds its plan with `plan_from_ranks` instead; either way step 3 (`apply`) takes the plan.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lowrank_edge.compress.analyse import Candidate, ModelAnalysis
from lowrank_edge.compress.policies import RankPolicy, describe_policy
from lowrank_edge.compress.rank_steps import cap_rank, round_rank, worth_factorising
from lowrank_edge.compress.result import (
    FACTORISED,
    KEPT_BREAK_EVEN,
    KEPT_EXCLUDED,
    kept_unsupported,
)
from lowrank_edge.errors import CompressionError


@dataclass(frozen=True)
class LayerDecision:
    """What to do with one layer: its status, the rank chosen and the rank it keeps.

    `chosen_rank` is the rank the choice arrived at (after capping and rounding), `rank_kept`
    the rank the layer has afterwards: `chosen_rank` when factorised, the full rank when it stays
    dense, None for an unsupported layer.
    """

    path: str
    status: str
    chosen_rank: int | None
    rank_kept: int | None

    @property
    def factorised(self) -> bool:
        """True if the layer is to be replaced by a factor pair."""
        return self.status == FACTORISED


@dataclass(frozen=True)
class RankPlan:
    """One decision per candidate (graph order) and how they were chosen (JSON-ready)."""

    decisions: tuple[LayerDecision, ...]
    settings: dict[str, Any] = field(default_factory=dict)

    def decision(self, path: str) -> LayerDecision:
        """The decision for the layer with this path (KeyError if none)."""
        for decision in self.decisions:
            if decision.path == path:
                return decision
        raise KeyError(path)

    @property
    def ranks(self) -> dict[str, int]:
        """{layer path: rank} of the layers to factorise."""
        return {d.path: int(d.rank_kept) for d in self.decisions if d.factorised}


def fixed_decision(candidate: Candidate, analysis: ModelAnalysis) -> LayerDecision | None:
    """The decision no rank choice can change (unsupported or excluded), else None."""
    if candidate.unsupported:
        return LayerDecision(candidate.path, kept_unsupported(candidate.unsupported), None, None)
    if candidate.path in analysis.excluded:
        return LayerDecision(candidate.path, KEPT_EXCLUDED, None, candidate.spectrum.full_rank)
    return None


def _check_rounding(rounding: object) -> None:
    if rounding is not None and (
        isinstance(rounding, bool) or not isinstance(rounding, numbers.Integral) or rounding < 1
    ):
        raise CompressionError(f"rounding must be None or an integer >= 1, got {rounding!r}")


def choose_ranks(
    analysis: ModelAnalysis,
    policy: RankPolicy,
    *,
    rounding: int | None = None,
    break_even: bool = True,
) -> RankPlan:
    """Step 2 with a per-layer policy: cap, round up to `rounding`, then the break-even test.

    With `break_even` a layer where r*(m+n) >= m*n stays dense (factorising saves nothing).
    """
    if not isinstance(policy, RankPolicy):
        raise CompressionError(
            f"policy must have a choose_rank(layer) method (a RankPolicy), got {policy!r}"
        )
    _check_rounding(rounding)
    decisions = []
    for candidate in analysis.candidates:
        fixed = fixed_decision(candidate, analysis)
        if fixed is not None:
            decisions.append(fixed)
            continue
        spectrum = candidate.spectrum
        rank = cap_rank(policy.choose_rank(spectrum), spectrum.full_rank, candidate.path)
        rank = round_rank(rank, rounding, spectrum.full_rank)
        if break_even and not worth_factorising(rank, spectrum.matrix_shape):
            decisions.append(
                LayerDecision(candidate.path, KEPT_BREAK_EVEN, rank, spectrum.full_rank)
            )
        else:
            decisions.append(LayerDecision(candidate.path, FACTORISED, rank, rank))
    settings = {
        "policy": describe_policy(policy),
        "rounding": rounding,
        "break_even": bool(break_even),
    }
    return RankPlan(tuple(decisions), settings)


def plan_from_ranks(
    analysis: ModelAnalysis,
    ranks: Mapping[str, int | None],
    settings: Mapping[str, Any],
    kept_status: str = KEPT_BREAK_EVEN,
) -> RankPlan:
    """A plan from {layer path: rank or None}: None or a missing path keeps the layer dense.

    For allocators that choose all ranks at once. Unsupported and excluded layers keep their
    fixed status whatever `ranks` says; a rank outside [1, full rank] is an error.
    """
    decisions = []
    for candidate in analysis.candidates:
        fixed = fixed_decision(candidate, analysis)
        if fixed is not None:
            decisions.append(fixed)
            continue
        full = candidate.spectrum.full_rank
        rank = ranks.get(candidate.path)
        if rank is None:
            decisions.append(LayerDecision(candidate.path, kept_status, None, full))
        else:
            rank = cap_rank(rank, full, candidate.path)
            decisions.append(LayerDecision(candidate.path, FACTORISED, rank, rank))
    return RankPlan(tuple(decisions), dict(settings))
