"""Step 3 of 3, apply: rewrite the model as a `RankPlan` says and report what was done.

Each factorised layer becomes its stock factor pair (`split`), with weights from plain SVD
unless `factors` supplies them (e.g. a data-aware factoriser); the graph is rebuilt
(`rebuild`) and costed before and after (`cost`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from lowrank_edge.compress.analyse import Candidate, ModelAnalysis
from lowrank_edge.compress.calibration import layers_by_path
from lowrank_edge.compress.choose import LayerDecision, RankPlan
from lowrank_edge.compress.cost import LayerCost, model_cost
from lowrank_edge.compress.rebuild import rebuild_model
from lowrank_edge.compress.result import (
    CompressionResult,
    CompressionTotals,
    LayerReport,
)
from lowrank_edge.compress.split import LayerFactors, split_layer
from lowrank_edge.errors import CompressionError


def _kernel_shape(layer: keras.layers.Layer) -> tuple[int, ...] | None:
    for weight in layer.weights:
        if weight.name.endswith("kernel"):
            return tuple(int(d) for d in weight.shape)
    return None


def layer_report(candidate: Candidate, decision: LayerDecision, before: LayerCost) -> LayerReport:
    """One layer's outcome: shapes, ranks, energy kept, params and MACs before and after."""
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
    factorised = decision.factorised
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


def _set_dense_weights(model, analysis: ModelAnalysis, plan: RankPlan, dense: Mapping) -> None:
    """Give the rebuilt copies of dense-kept layers their refitted kernel (and bias)."""
    layers = layers_by_path(model)
    for path, (kernel, bias) in dense.items():
        if plan.decision(path).factorised or path not in layers:
            raise CompressionError(f"dense weights given for '{path}', which is not kept dense")
        layer = layers[path]
        layer.kernel.assign(np.asarray(kernel, dtype=layer.kernel.dtype))
        if bias is not None:
            layer.bias.assign(np.asarray(bias, dtype=layer.bias.dtype))


def apply_plan(
    analysis: ModelAnalysis,
    plan: RankPlan,
    factors: Mapping[str, LayerFactors] | None = None,
    extra_settings: Mapping[str, Any] | None = None,
    dense: Mapping[str, tuple[np.ndarray, np.ndarray | None]] | None = None,
) -> CompressionResult:
    """Step 3: a new model with each planned layer replaced by its factor pair.

    `factors` maps a layer path to precomputed factor weights at the planned rank; layers not
    in it get plain (weight) SVD factors. `dense` maps a layer the plan keeps to a refitted
    (kernel, bias or None). The analysed model is not modified.
    """
    factors = dict(factors or {})
    decisions = [plan.decision(c.path) for c in analysis.candidates]
    splits = {}
    for candidate, decision in zip(analysis.candidates, decisions, strict=True):
        if not decision.factorised:
            continue
        given = factors.pop(candidate.path, None)
        splits[id(candidate.layer)] = split_layer(candidate.layer, decision.rank_kept, given)
    if factors:
        raise CompressionError(f"factors given for layers the plan keeps dense: {sorted(factors)}")
    model = analysis.model
    new_model = rebuild_model(model, splits)
    if dense:
        _set_dense_weights(new_model, analysis, plan, dense)

    before, after = model_cost(model), model_cost(new_model)
    cost_by_path = {layer.name: layer for layer in before.layers}
    reports = [
        layer_report(c, d, cost_by_path[c.path])
        for c, d in zip(analysis.candidates, decisions, strict=True)
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
        **plan.settings,
        "include": list(analysis.include),
        "exclude": list(analysis.exclude),
        **dict(extra_settings or {}),
    }
    return CompressionResult(new_model, reports, settings, totals, list(analysis.warnings))
