"""The one latency statistics record used by every backend, the report and the CSV.

Like onnxruntime's benchmark_helper: per-call latencies in, percentiles, mean,
standard deviation and throughput out, so every number in a report is computed
the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

NS_PER_MS = 1_000_000


@dataclass(frozen=True)
class LatencyStats:
    """Latency of one configuration: milliseconds per call, and samples per second.

    Percentiles use linear interpolation between order statistics (numpy's
    default); `std_ms` is the sample standard deviation (ddof=1, 0 for one run);
    `throughput` is batch / mean latency, in samples per second.
    """

    runs: int
    batch: int
    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    std_ms: float
    throughput: float

    @classmethod
    def from_ns(cls, samples_ns: Sequence[int], batch: int) -> LatencyStats:
        """Statistics of per-call latencies given in nanoseconds (perf_counter_ns deltas)."""
        if len(samples_ns) == 0:
            raise ValueError("no latency samples to summarise")
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        ms = np.asarray(samples_ns, dtype=np.float64) / NS_PER_MS
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        mean = float(ms.mean())
        return cls(
            runs=int(ms.size),
            batch=int(batch),
            min_ms=float(ms.min()),
            p50_ms=float(p50),
            p90_ms=float(p90),
            p99_ms=float(p99),
            max_ms=float(ms.max()),
            mean_ms=mean,
            std_ms=float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
            throughput=batch * 1000.0 / mean if mean > 0 else float("inf"),
        )

    def to_dict(self) -> dict:
        """Plain JSON-ready fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LatencyStats:
        """Rebuild from `to_dict` output (e.g. a results.jsonl record)."""
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})
