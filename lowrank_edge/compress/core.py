"""`compress_model`: analyse -> choose ranks -> split layers -> rebuild -> report.

Each step is its own module: `analyse` (candidates and spectra), `policies` and
`rank_steps` (rank choice, rounding, break-even), `split`/`factor` (factor layers and
weights), `rebuild` (new model), `report` (per-layer outcomes).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import keras

# Module import, not `from ... import model_cost`: lowrank_edge.cost imports this package's
# graph walker, so either may be imported first.
from lowrank_edge import cost
from lowrank_edge.compress.analyse import Candidate, find_candidates
from lowrank_edge.compress.errors import CompressionError
from lowrank_edge.compress.graph import check_graph_model
from lowrank_edge.compress.policies import RankPolicy, describe_policy
from lowrank_edge.compress.rank_steps import cap_rank, round_rank, worth_factorising
from lowrank_edge.compress.rebuild import rebuild_model
from lowrank_edge.compress.report import (
    FACTORISED,
    KEPT_BREAK_EVEN,
    KEPT_EXCLUDED,
    CompressionResult,
    CompressionTotals,
    LayerReport,
    kept_unsupported,
)
from lowrank_edge.compress.selection import check_patterns, select_layers
from lowrank_edge.compress.split import split_layer


@dataclass(frozen=True)
class _Decision:
    status: str
    chosen_rank: int | None
    rank_kept: int | None


def _decide(
    candidate: Candidate,
    policy: RankPolicy,
    rounding: int | None,
    break_even: bool,
    excluded: frozenset[str],
) -> _Decision:
    if candidate.unsupported:
        return _Decision(kept_unsupported(candidate.unsupported), None, None)
    spectrum = candidate.spectrum
    if candidate.path in excluded:
        return _Decision(KEPT_EXCLUDED, None, spectrum.full_rank)
    rank = cap_rank(policy.choose_rank(spectrum), spectrum.full_rank, candidate.path)
    rank = round_rank(rank, rounding, spectrum.full_rank)
    if break_even and not worth_factorising(rank, spectrum.matrix_shape):
        return _Decision(KEPT_BREAK_EVEN, rank, spectrum.full_rank)
    return _Decision(FACTORISED, rank, rank)


def _kernel_shape(layer: keras.layers.Layer) -> tuple[int, ...] | None:
    for weight in layer.weights:
        if weight.name.endswith("kernel"):
            return tuple(int(d) for d in weight.shape)
    return None


def _report(candidate: Candidate, decision: _Decision, before: cost.LayerCost) -> LayerReport:
    spectrum = candidate.spectrum
    if spectrum is None:
        return LayerReport(
            name=candidate.path,
            class_name=before.class_name,
            status=decision.status,
            kernel_shape=_kernel_shape(candidate.layer),
            matrix_shape=None,
            full_rank=None,
            chosen_rank=None,
            rank_kept=None,
            energy_squared=None,
            energy_abs=None,
            params_before=before.params,
            params_after=before.params,
            macs_before=before.macs,
            macs_after=before.macs,
        )
    rank = decision.rank_kept
    factorised = decision.status == FACTORISED
    return LayerReport(
        name=candidate.path,
        class_name=spectrum.class_name,
        status=decision.status,
        kernel_shape=spectrum.kernel_shape,
        matrix_shape=spectrum.matrix_shape,
        full_rank=spectrum.full_rank,
        chosen_rank=decision.chosen_rank,
        rank_kept=rank,
        energy_squared=spectrum.energy_kept(rank, "squared"),
        energy_abs=spectrum.energy_kept(rank, "abs"),
        params_before=spectrum.params,
        params_after=spectrum.params_at_rank(rank) if factorised else spectrum.params,
        macs_before=spectrum.macs,
        macs_after=spectrum.macs_at_rank(rank) if factorised else spectrum.macs,
    )


def _check_arguments(policy: object, rounding: object) -> None:
    if not isinstance(policy, RankPolicy):
        raise CompressionError(
            f"policy must have a choose_rank(layer) method (a RankPolicy), got {policy!r}"
        )
    if rounding is not None and (
        isinstance(rounding, bool) or not isinstance(rounding, numbers.Integral) or rounding < 1
    ):
        raise CompressionError(f"rounding must be None or an integer >= 1, got {rounding!r}")


def compress_model(
    model: keras.Model,
    policy: RankPolicy,
    *,
    rounding: int | None = None,
    break_even: bool = True,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> CompressionResult:
    """Factorise the Conv2D/Dense layers of a Sequential/Functional model; return a new model.

    `policy` picks each layer's rank; `rounding` rounds it up to a multiple (capped at full
    rank); with `break_even` a layer where r*(m+n) >= m*n stays dense. `include`/`exclude` are
    fnmatch patterns on layer paths/names. The input model is not modified.
    """
    check_graph_model(model)
    _check_arguments(policy, rounding)
    include = check_patterns(include, "include")
    exclude = check_patterns(exclude, "exclude")

    candidates = find_candidates(model)
    selection = select_layers([c.path for c in candidates], include, exclude)
    if selection.unmatched_include:
        names = ", ".join(c.path for c in candidates) or "none"
        raise CompressionError(
            f"include pattern(s) {list(selection.unmatched_include)} match no layer of model "
            f"'{model.name}'; its Conv2D/Dense-like layers are: {names}"
        )
    decisions = [_decide(c, policy, rounding, break_even, selection.excluded) for c in candidates]
    splits = {
        id(c.layer): split_layer(c.layer, d.rank_kept)
        for c, d in zip(candidates, decisions, strict=True)
        if d.status == FACTORISED
    }
    new_model = rebuild_model(model, splits)

    before, after = cost.model_cost(model), cost.model_cost(new_model)
    cost_by_path = {layer.name: layer for layer in before.layers}
    reports = [
        _report(c, d, cost_by_path[c.path]) for c, d in zip(candidates, decisions, strict=True)
    ]
    totals = CompressionTotals(
        params_before=before.params,
        params_after=after.params,
        macs_before=before.macs,
        macs_after=after.macs,
        layers_factorised=len(splits),
        layers_kept=len(reports) - len(splits),
    )
    settings = {
        "policy": describe_policy(policy),
        "rounding": rounding,
        "break_even": bool(break_even),
        "include": list(include),
        "exclude": list(exclude),
    }
    warnings = [f"exclude pattern '{p}' matches no layer" for p in selection.unmatched_exclude]
    return CompressionResult(new_model, reports, settings, totals, warnings)
