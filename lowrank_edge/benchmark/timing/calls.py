"""How long to time one model: warm-up, then runs until a count and a duration are met.

The clock is a parameter (default `time.perf_counter_ns`) so the stopping rules
can be tested with a fake clock, never by asserting on real time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from lowrank_edge.errors import LowrankEdgeError

Clock = Callable[[], int]
NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class TimingPolicy:
    """Warm-up and timing budget for one configuration, split over rounds and repeats.

    Totals are per configuration and per repeat: `min_runs`, `min_time_s` and
    `max_time_s` are divided evenly over the `rounds` interleaved rounds. The
    warm-up (`warmup_runs` calls and at least `warmup_s`) happens every time a
    session is opened, i.e. once per model per round, and is never timed.
    """

    warmup_runs: int = 5
    warmup_s: float = 0.05
    min_runs: int = 50
    min_time_s: float = 1.0
    max_time_s: float = 20.0
    rounds: int = 5
    repeats: int = 1

    def __post_init__(self) -> None:
        problems = []
        if self.warmup_runs < 0:
            problems.append(f"warm-up runs must be >= 0, got {self.warmup_runs}")
        if self.warmup_s < 0:
            problems.append(f"warm-up time must be >= 0, got {self.warmup_s}")
        if self.min_runs < 1:
            problems.append(f"minimum runs must be >= 1, got {self.min_runs}")
        if self.min_time_s < 0:
            problems.append(f"minimum time must be >= 0, got {self.min_time_s}")
        if self.max_time_s <= 0 or self.max_time_s < self.min_time_s:
            problems.append(
                f"maximum time must be > 0 and >= the minimum time ({self.min_time_s}),"
                f" got {self.max_time_s}"
            )
        if self.rounds < 1:
            problems.append(f"rounds must be >= 1, got {self.rounds}")
        if self.repeats < 1:
            problems.append(f"repeats must be >= 1, got {self.repeats}")
        if problems:
            raise LowrankEdgeError("invalid timing options: " + "; ".join(problems))

    def per_round(self) -> TimingPolicy:
        """The budget of one round: totals divided by `rounds` (at least one run)."""
        return replace(
            self,
            min_runs=max(1, math.ceil(self.min_runs / self.rounds)),
            min_time_s=self.min_time_s / self.rounds,
            max_time_s=self.max_time_s / self.rounds,
            rounds=1,
            repeats=1,
        )

    def to_dict(self) -> dict:
        """Plain JSON-ready fields (recorded with every result)."""
        return asdict(self)


def warm_up(
    call: Callable[[], object], policy: TimingPolicy, clock: Clock = time.perf_counter_ns
) -> int:
    """Call `call` until `warmup_runs` calls and `warmup_s` have passed (or `max_time_s`)."""
    start = clock()
    runs = 0
    while True:
        elapsed = clock() - start
        done = runs >= policy.warmup_runs and elapsed >= policy.warmup_s * NS_PER_S
        if done or elapsed >= policy.max_time_s * NS_PER_S:
            return runs
        call()
        runs += 1


def time_calls(
    call: Callable[[], object], policy: TimingPolicy, clock: Clock = time.perf_counter_ns
) -> list[int]:
    """Per-call latencies (ns) until `min_runs` and `min_time_s` are met, or `max_time_s` passed.

    Always at least one call, so a very slow model still gets a measurement.
    """
    samples: list[int] = []
    start = clock()
    min_time = policy.min_time_s * NS_PER_S
    max_time = policy.max_time_s * NS_PER_S
    while True:
        before = clock()
        call()
        after = clock()
        samples.append(after - before)
        elapsed = after - start
        if (len(samples) >= policy.min_runs and elapsed >= min_time) or elapsed >= max_time:
            return samples
