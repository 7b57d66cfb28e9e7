"""Rank policies: given one layer's spectrum and cost facts, choose how many ranks to keep.

A policy is any object with `choose_rank(layer: LayerSpectrum) -> int`; the compressor caps
the answer to [1, full rank], then applies rounding and the break-even rule as separate steps
(`rank_steps`). New policies (per-layer adaptive, latency-driven) plug in without touching the
rewrite code: a `LayerSpectrum` carries the layer's shapes, spectrum and MAC/param facts.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from lowrank_edge.compress.spectrum import MEASURES, LayerSpectrum, Measure, cumulative_energy
from lowrank_edge.errors import CompressionError


@runtime_checkable
class RankPolicy(Protocol):
    """Chooses the rank to keep for one layer."""

    def choose_rank(self, layer: LayerSpectrum) -> int:
        """Rank to keep for `layer` (values above its full rank are capped by the caller)."""
        ...


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


@dataclass(frozen=True)
class EnergyPolicy:
    """Keep the smallest rank r whose energy fraction reaches `energy` (E).

    measure="squared" (default): smallest r with sum_{i<=r} s_i^2 / sum_i s_i^2 >= E, i.e. the
    rank-r truncation keeps a fraction E of the kernel's squared Frobenius norm.
    measure="abs": the same with s_i instead of s_i^2. E must lie in (0, 1]; E = 1 keeps the
    whole (numerically nonzero) spectrum.
    """

    energy: float
    measure: Measure = "squared"

    def __post_init__(self) -> None:
        if not _is_number(self.energy) or not 0.0 < float(self.energy) <= 1.0:
            raise CompressionError(f"energy must be a number in (0, 1], got {self.energy!r}")
        if self.measure not in MEASURES:
            raise CompressionError(f"measure must be one of {MEASURES}, got {self.measure!r}")

    def choose_rank(self, layer: LayerSpectrum) -> int:
        """Smallest rank whose cumulative energy fraction is >= E."""
        fractions = cumulative_energy(layer.singular_values, self.measure)
        return int(np.searchsorted(fractions, float(self.energy), side="left")) + 1


@dataclass(frozen=True)
class FixedRankPolicy:
    """Keep the same rank in every layer (capped at each layer's full rank)."""

    rank: int

    def __post_init__(self) -> None:
        if not isinstance(self.rank, (int, np.integer)) or isinstance(self.rank, bool):
            raise CompressionError(f"rank must be an integer >= 1, got {self.rank!r}")
        if self.rank < 1:
            raise CompressionError(f"rank must be an integer >= 1, got {self.rank}")

    def choose_rank(self, layer: LayerSpectrum) -> int:
        """The fixed rank."""
        return int(self.rank)


@dataclass(frozen=True)
class FractionPolicy:
    """Keep ceil(fraction * full rank) ranks (at least 1); fraction must lie in (0, 1]."""

    fraction: float

    def __post_init__(self) -> None:
        if not _is_number(self.fraction) or not 0.0 < float(self.fraction) <= 1.0:
            raise CompressionError(f"fraction must be a number in (0, 1], got {self.fraction!r}")

    def choose_rank(self, layer: LayerSpectrum) -> int:
        """ceil(fraction * full rank), tolerant of float noise (0.1 * 30 keeps 3, not 4)."""
        return max(1, math.ceil(float(self.fraction) * layer.full_rank - 1e-9))


def describe_policy(policy: RankPolicy) -> dict[str, Any]:
    """Plain JSON-ready description of a policy for reports: its class and its fields."""
    fields = dataclasses.asdict(policy) if dataclasses.is_dataclass(policy) else {}
    if not fields:
        fields = {"repr": repr(policy)}
    return {"type": type(policy).__name__, **fields}
