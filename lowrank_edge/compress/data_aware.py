"""Data-aware compression: output spectra for choosing ranks, factors fitted layer by layer.

`whitened_analysis` swaps each factorable layer's kernel spectrum for its output spectrum on
calibration images, so every rank policy and the budget allocator work on output error
unchanged (`EnergyPolicy(E)` then keeps E of the layer's output energy). `fitted_factors`
computes the factor weights for a `RankPlan`: in graph order, each planned layer is fitted to
the original model's output of that layer from the inputs that the already-compressed layers
before it produce (least squares, then the whitened truncation), so errors stop compounding.
The result plugs into `apply_plan(analysis, plan, factors)`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lowrank_edge.compress.analyse import ModelAnalysis
from lowrank_edge.compress.calibration import (
    DEFAULT_BATCH,
    input_grams,
    layers_by_path,
    paired_moments,
)
from lowrank_edge.compress.choose import RankPlan
from lowrank_edge.compress.factor import factor_kernels
from lowrank_edge.compress.rebuild import rebuild_model
from lowrank_edge.compress.spectrum import kernel_matrix
from lowrank_edge.compress.split import LayerFactors
from lowrank_edge.compress.whiten import (
    DEFAULT_DAMPING,
    least_squares_kernel,
    output_spectrum,
    whitened_factors,
)

FACTORISERS = ("whitened", "svd")


def whitened_analysis(
    analysis: ModelAnalysis,
    images: np.ndarray,
    damping: float = DEFAULT_DAMPING,
    batch_size: int = DEFAULT_BATCH,
) -> ModelAnalysis:
    """`analysis` with each factorable layer's singular values replaced by its output
    spectrum (singular values of S W, S^T S = X^T X + eps I) on `images`."""
    paths = [c.path for c in analysis.factorable]
    grams = input_grams(analysis.model, images, paths, batch_size)
    candidates = []
    for candidate in analysis.candidates:
        if candidate.path in grams:
            kernel = kernel_matrix(candidate.layer.kernel.numpy())
            values = output_spectrum(grams[candidate.path], kernel, damping)
            spectrum = dataclasses.replace(candidate.spectrum, singular_values=values)
            candidate = dataclasses.replace(candidate, spectrum=spectrum)
        candidates.append(candidate)
    return dataclasses.replace(analysis, candidates=tuple(candidates))


def fitted_factors(
    analysis: ModelAnalysis,
    plan: RankPlan,
    images: np.ndarray,
    *,
    damping: float = DEFAULT_DAMPING,
    sequential: bool = True,
    batch_size: int = DEFAULT_BATCH,
) -> dict[str, LayerFactors]:
    """{path: whitened factor weights} for every layer the plan factorises.

    With `sequential`, layer k is fitted on the inputs produced by layers < k as already
    compressed (a working copy whose kernels are set to the products A B as it goes), against
    the original model's output of layer k; without it, each layer is fitted on the original
    inputs alone. The analysed model is not modified.
    """
    model = analysis.model
    planned = [c for c in analysis.candidates if plan.decision(c.path).factorised]
    reference = rebuild_model(model, {})
    working = rebuild_model(model, {}) if sequential else reference
    work_layers = layers_by_path(working)
    grams = {}
    if not sequential:
        grams = input_grams(reference, images, [c.path for c in planned], batch_size)
    factors = {}
    for candidate in planned:
        rank = plan.decision(candidate.path).rank_kept
        original = candidate.layer.kernel.numpy()
        kernel = kernel_matrix(original).astype(np.float64)
        if sequential:
            gram, cross = paired_moments(working, reference, images, candidate.path, batch_size)
            target = least_squares_kernel(gram, cross, kernel, damping)
            a, b = whitened_factors(gram, target, rank, damping)
            work_layers[candidate.path].kernel.assign((a @ b).reshape(original.shape))
        else:
            a, b = whitened_factors(grams[candidate.path], kernel, rank, damping)
        kernel_a, kernel_b = factor_kernels(a, b, original.shape, original.dtype)
        factors[candidate.path] = LayerFactors(kernel_a, kernel_b)
    return factors
