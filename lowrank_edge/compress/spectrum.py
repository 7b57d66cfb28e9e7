"""The facts a rank policy sees about one factorable layer: its spectrum and its cost.

A kernel is viewed as a matrix (m, n): all axes but the last flattened into rows, the output
channels/units as columns, so a Conv2D kernel (kh, kw, cin, cout) is (kh*kw*cin, cout) and a
Dense kernel (in, out) is itself. Keeping rank r costs r*(m+n) weights instead of m*n, and
`positions * r*(m+n)` MACs instead of `positions * m*n`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

Measure = Literal["squared", "abs"]
MEASURES: tuple[str, ...] = ("squared", "abs")


def kernel_matrix(kernel: np.ndarray) -> np.ndarray:
    """The (m, n) matrix view of a kernel: every axis but the last flattened (C order)."""
    return np.reshape(kernel, (-1, kernel.shape[-1]))


def singular_values(matrix: np.ndarray) -> np.ndarray:
    """Singular values of `matrix`, descending, computed in float64."""
    return np.linalg.svd(np.asarray(matrix, dtype=np.float64), compute_uv=False)


def energy_fraction(values: np.ndarray, rank: int, measure: Measure = "squared") -> float:
    """Share of the spectrum kept by the top `rank` singular values.

    "squared": sum_{i<=r} s_i^2 / sum s_i^2 (the Frobenius energy); "abs": sum_{i<=r} s_i /
    sum s_i. An all-zero spectrum counts as fully kept (1.0).
    """
    weights = _measure_weights(values, measure)
    total = float(weights.sum())
    if total <= 0.0:
        return 1.0
    return min(1.0, float(weights[: max(rank, 0)].sum()) / total)


def _measure_weights(values: np.ndarray, measure: Measure) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if measure == "squared":
        return values**2
    if measure == "abs":
        return np.abs(values)
    raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")


def cumulative_energy(values: np.ndarray, measure: Measure = "squared") -> np.ndarray:
    """Energy fraction kept at every rank 1..len(values); the last entry is exactly 1.0."""
    weights = _measure_weights(values, measure)
    total = float(weights.sum())
    if total <= 0.0:
        return np.ones(len(weights))
    fractions = np.cumsum(weights) / total
    fractions[-1] = 1.0
    return fractions


@dataclass(frozen=True, eq=False)
class LayerSpectrum:
    """One factorable layer as a rank policy sees it (pure data, no Keras objects).

    `positions` is the number of output positions summed over all calls of the layer (H*W per
    call for a Conv2D, 1 for a Dense on a vector), so dense MACs are positions*m*n.
    """

    name: str
    class_name: str
    kernel_shape: tuple[int, ...]
    matrix_shape: tuple[int, int]
    singular_values: np.ndarray
    positions: int
    bias_params: int = 0
    calls: int = 1

    @property
    def full_rank(self) -> int:
        """min(m, n): the largest rank a factorisation can keep."""
        return min(self.matrix_shape)

    @property
    def params(self) -> int:
        """Weights of the unfactorised layer (kernel and bias)."""
        return math.prod(self.matrix_shape) + self.bias_params

    @property
    def macs(self) -> int:
        """MACs of the unfactorised layer over all its calls."""
        return self.positions * math.prod(self.matrix_shape)

    def params_at_rank(self, rank: int) -> int:
        """Weights of the factor pair at `rank` (bias on the second factor)."""
        return rank * sum(self.matrix_shape) + self.bias_params

    def macs_at_rank(self, rank: int) -> int:
        """MACs of the factor pair at `rank` over all calls."""
        return self.positions * rank * sum(self.matrix_shape)

    def energy_kept(self, rank: int, measure: Measure = "squared") -> float:
        """Share of the spectrum kept at `rank` (see `energy_fraction`)."""
        return energy_fraction(self.singular_values, rank, measure)
