"""Evaluation-based error curves (AIMET-style greedy selection's input), for comparison.

For every factorable layer alone and each candidate rank (fractions of its full rank, as
AIMET's "num_comp_ratio_candidates"), the layer's kernel is replaced by its rank-r product
(whitened factors when calibration grams are given, plain SVD otherwise) in a private copy of
the model, and the drop in accuracy on a validation subset is the error of that (layer, rank).
The allocator then minimises the summed drops under the budget. It costs one evaluation per
(layer, candidate); the spectra cost none, which is why they are the default.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from lowrank_edge.compress.analyse import ModelAnalysis
from lowrank_edge.compress.calibration import DEFAULT_BATCH, input_grams, layers_by_path
from lowrank_edge.compress.factor import factor_matrix
from lowrank_edge.compress.rebuild import rebuild_model
from lowrank_edge.compress.spectrum import kernel_matrix
from lowrank_edge.compress.whiten import DEFAULT_DAMPING, whitened_factors
from lowrank_edge.model.train import accuracy

CANDIDATE_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def accuracy_drop_curves(
    analysis: ModelAnalysis,
    x_val: np.ndarray,
    y_val: np.ndarray,
    calibration: np.ndarray | None = None,
    *,
    fractions: Sequence[float] = CANDIDATE_FRACTIONS,
    damping: float = DEFAULT_DAMPING,
    batch_size: int = 256,
) -> dict[str, dict[int, float]]:
    """{layer path: {rank: accuracy drop (>= 0) with only that layer at that rank}}."""
    layers = analysis.factorable
    grams = {}
    if calibration is not None:
        grams = input_grams(analysis.model, calibration, [c.path for c in layers], DEFAULT_BATCH)
    working = rebuild_model(analysis.model, {})
    work_layers = layers_by_path(working)
    base = accuracy(working, x_val, y_val, batch_size)
    curves: dict[str, dict[int, float]] = {}
    for candidate in layers:
        full = candidate.spectrum.full_rank
        layer = work_layers[candidate.path]
        original = layer.kernel.numpy()
        kernel = kernel_matrix(original).astype(np.float64)
        ranks = sorted({max(1, math.ceil(f * full - 1e-9)) for f in fractions} - {full})
        curves[candidate.path] = {}
        for rank in ranks:
            if grams:
                a, b = whitened_factors(grams[candidate.path], kernel, rank, damping)
            else:
                a, b = factor_matrix(kernel, rank)
            layer.kernel.assign((a @ b).reshape(original.shape).astype(original.dtype))
            drop = base - accuracy(working, x_val, y_val, batch_size)
            curves[candidate.path][rank] = max(drop, 0.0)
        layer.kernel.assign(original)
    return curves
