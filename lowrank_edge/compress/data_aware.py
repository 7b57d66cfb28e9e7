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
from dataclasses import dataclass, field

import numpy as np

from lowrank_edge.benchmark.reporting.progress import Progress
from lowrank_edge.compress.analyse import ModelAnalysis
from lowrank_edge.compress.calibration import (
    DEFAULT_BATCH,
    input_grams,
    layers_by_path,
    paired_moments,
)
from lowrank_edge.compress.choose import RankPlan
from lowrank_edge.compress.factor import factor_kernels
from lowrank_edge.compress.layerwise import sequential_moments, streams
from lowrank_edge.compress.rebuild import rebuild_model
from lowrank_edge.compress.spectrum import kernel_matrix
from lowrank_edge.compress.split import LayerFactors
from lowrank_edge.compress.whiten import (
    DEFAULT_DAMPING,
    least_squares_target,
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


@dataclass(frozen=True)
class FittedWeights:
    """What `fitted_factors` computed: factor weights for the factorised layers and, with
    `refit_dense`, new (kernel, bias) for the layers the plan keeps dense."""

    factors: dict[str, LayerFactors] = field(default_factory=dict)
    dense: dict[str, tuple[np.ndarray, np.ndarray | None]] = field(default_factory=dict)


def _fit_layer(moments, kernel, bias, rank, damping, intercept):
    """(A, B or None, bias): the rank-`rank` (None: full) fit of one layer to its original
    outputs, with the bias absorbing the mean shift when `intercept`."""
    if intercept:
        gram, cross = moments.centered(kernel)
    else:
        gram, cross = moments.gram, moments.cross
    target = least_squares_target(gram, cross, kernel, damping)
    if rank is None:
        a, b, product = target, None, target
    else:
        a, b = whitened_factors(gram, target, rank, damping)
        product = a @ b
    if intercept:
        mean_new, mean_old = moments.sum_new / moments.count, moments.sum_old / moments.count
        bias = bias + mean_old @ kernel - mean_new @ product
    return a, b, bias


def _paired_moments(working, reference, images, paths, batch_size):
    """(path, moments) for the layer-by-layer fit, in order: one streamed pass of both models
    when every layer is called once, else both whole models per layer."""
    if streams(working, reference, paths):
        yield from sequential_moments(working, reference, images, paths, batch_size)
        return
    reference = rebuild_model(reference, {})  # a private copy: capturing patches its layers
    for path in paths:
        yield path, paired_moments(working, reference, images, path, batch_size)


def fitted_factors(
    analysis: ModelAnalysis,
    plan: RankPlan,
    images: np.ndarray,
    *,
    damping: float = DEFAULT_DAMPING,
    sequential: bool = True,
    refit_dense: bool = False,
    intercept: bool = False,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
) -> FittedWeights:
    """Whitened factor weights for every layer the plan factorises.

    With `sequential`, layer k is fitted on the inputs produced by layers < k as already
    compressed (a working copy whose kernels are set to the products A B as it goes), against
    the original model's output of layer k; without it, each layer is fitted on the original
    inputs alone. With `refit_dense` (sequential only) the layers kept dense are refitted the
    same way at full rank; with `intercept` a layer with a bias also corrects it for the shift
    in the mean of its inputs. `progress` shows one step per fitted layer. The analysed model
    is not modified.
    """
    model = analysis.model
    refit = sequential and refit_dense
    fitted = [c for c in analysis.factorable if plan.decision(c.path).factorised or refit]
    progress = progress or Progress(len(fitted), enabled=False)
    progress.total, progress.start = max(len(fitted), 1), progress.clock()  # the fit alone
    weights = FittedWeights()
    if sequential:
        working = rebuild_model(model, {})
        work_layers = layers_by_path(working)
        paths = [c.path for c in fitted]
        moments = _paired_moments(working, model, images, paths, batch_size)
    else:
        grams = input_grams(model, images, [c.path for c in fitted], batch_size)
    for candidate in fitted:
        decision = plan.decision(candidate.path)
        rank = decision.rank_kept if decision.factorised else None
        progress.step(f"fit {candidate.path}", "full rank" if rank is None else f"rank {rank}")
        layer = candidate.layer
        original = layer.kernel.numpy()
        kernel = kernel_matrix(original).astype(np.float64)
        bias = layer.bias.numpy().astype(np.float64) if layer.use_bias else None
        if sequential:
            path, paired = next(moments)
            assert path == candidate.path, (path, candidate.path)
            a, b, bias = _fit_layer(
                paired, kernel, bias, rank, damping, intercept and bias is not None
            )
            work = work_layers[candidate.path]
            work.kernel.assign((a if b is None else a @ b).reshape(original.shape))
            if bias is not None:
                work.bias.assign(bias.astype(original.dtype))
        else:
            a, b = whitened_factors(grams[candidate.path], kernel, rank, damping)
        out_bias = None if bias is None or not intercept else bias.astype(original.dtype)
        if b is None:
            weights.dense[candidate.path] = (
                a.reshape(original.shape).astype(original.dtype),
                out_bias,
            )
        else:
            kernel_a, kernel_b = factor_kernels(a, b, original.shape, original.dtype)
            weights.factors[candidate.path] = LayerFactors(kernel_a, kernel_b, out_bias)
    if fitted:
        progress.finish(f"fitted {len(fitted)} layers")
    return weights
