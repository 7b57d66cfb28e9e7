"""Speedups from interleaved rounds: the median of per-round ratios, with their spread.

Within a round the baseline and the model ran back to back, so the ratio of
their p50s cancels slow drift (thermal, other load) that would bias a ratio of
two separately measured p50s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from lowrank_edge.benchmark.timing.interleave import Measurement
from lowrank_edge.benchmark.timing.stats import NS_PER_MS


@dataclass(frozen=True)
class RatioSummary:
    """Median of per-round ratios with quartiles and range (q1/q3 by linear interpolation)."""

    median: float
    q1: float
    q3: float
    min: float
    max: float
    rounds: int

    def to_dict(self) -> dict:
        """Plain JSON-ready fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RatioSummary:
        """Inverse of `to_dict`."""
        return cls(**{name: data[name] for name in ("median", "q1", "q3", "min", "max", "rounds")})

    def overlaps(self, other: RatioSummary) -> bool:
        """True when the interquartile ranges of the two meet: neither is faster beyond the
        middle half of its own per-round ratios."""
        return self.q1 <= other.q3 and other.q1 <= self.q3

    def spread_text(self) -> str:
        """`paired, IQR 1.55-1.70 over 15 rounds` (one round: no range)."""
        if self.rounds < 2:
            return "paired, 1 round"
        return f"paired, IQR {self.q1:.2f}-{self.q3:.2f} over {self.rounds} rounds"


def _median_ms(samples_ns: Sequence[int]) -> float:
    return float(np.median(np.asarray(samples_ns, dtype=np.float64))) / NS_PER_MS


def per_round_ratios(baseline: Measurement, model: Measurement) -> list[float]:
    """p50(baseline) / p50(model) for every (repeat, round) both have timed."""
    ratios = []
    for base_repeat, model_repeat in zip(baseline.samples_ns, model.samples_ns, strict=False):
        for base_round, model_round in zip(base_repeat, model_repeat, strict=False):
            if base_round and model_round:
                ratios.append(_median_ms(base_round) / _median_ms(model_round))
    return ratios


def summarise_ratios(ratios: Sequence[float]) -> RatioSummary | None:
    """Median, quartiles and range of `ratios`; None when there are none."""
    if len(ratios) == 0:
        return None
    values = np.asarray(ratios, dtype=np.float64)
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return RatioSummary(
        median=float(median),
        q1=float(q1),
        q3=float(q3),
        min=float(values.min()),
        max=float(values.max()),
        rounds=int(values.size),
    )


def paired_speedup(baseline: Measurement, model: Measurement) -> RatioSummary | None:
    """The model's speedup over `baseline` from the rounds both were timed in, or None."""
    return summarise_ratios(per_round_ratios(baseline, model))


def repeat_p50s(measurement: Measurement) -> list[float]:
    """The p50 (ms) of each repeat's pooled rounds: their spread shows repeat-to-repeat noise."""
    p50s = []
    for repeat in measurement.samples_ns:
        pooled = [s for rnd in repeat for s in rnd]
        if pooled:
            p50s.append(_median_ms(pooled))
    return p50s


def relative_spread(values: Sequence[float]) -> float | None:
    """(max - min) / median of `values`; None for fewer than two values."""
    if len(values) < 2:
        return None
    median = float(np.median(values))
    return (max(values) - min(values)) / median if median > 0 else None
