"""The benchmark's pure parts: statistics, timing rules, interleaving, ratios, inputs, progress."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest

from lowrank_edge.benchmark.backends.inputs import make_batch
from lowrank_edge.benchmark.reporting.progress import Progress, format_duration
from lowrank_edge.benchmark.results.records import (
    FLAG_LOW_EFFICIENCY,
    FLAG_SLOWER,
    comparison_flags,
    spread_warning,
    theoretical_speedup,
)
from lowrank_edge.benchmark.timing.calls import TimingPolicy, time_calls, warm_up
from lowrank_edge.benchmark.timing.interleave import (
    Measurement,
    interleaved_order,
    measure_interleaved,
)
from lowrank_edge.benchmark.timing.ratios import (
    per_round_ratios,
    relative_spread,
    repeat_p50s,
    summarise_ratios,
)
from lowrank_edge.benchmark.timing.stats import LatencyStats
from lowrank_edge.errors import LowrankEdgeError

MS = 1_000_000  # ns


class FakeClock:
    """A clock that advances by `step` ns on every reading (deterministic timing)."""

    def __init__(self, step: int):
        self.now, self.step = 0, step

    def __call__(self) -> int:
        self.now += self.step
        return self.now


def test_latency_stats_on_known_samples():
    samples = [i * MS for i in range(1, 11)]  # 1..10 ms
    stats = LatencyStats.from_ns(samples, batch=4)
    assert stats.runs == 10 and stats.batch == 4
    assert stats.min_ms == 1.0 and stats.max_ms == 10.0
    assert stats.p50_ms == pytest.approx(5.5)
    assert stats.p90_ms == pytest.approx(9.1)  # linear interpolation: 9 + 0.1 * (10 - 9)
    assert stats.p99_ms == pytest.approx(9.91)
    assert stats.mean_ms == pytest.approx(5.5)
    assert stats.std_ms == pytest.approx(np.std(np.arange(1, 11), ddof=1))
    assert stats.throughput == pytest.approx(4 * 1000 / 5.5)  # samples per second
    assert LatencyStats.from_dict(stats.to_dict()) == stats


def test_latency_stats_single_run_and_bad_input():
    stats = LatencyStats.from_ns([2 * MS], batch=1)
    assert (stats.p50_ms, stats.p99_ms, stats.std_ms) == (2.0, 2.0, 0.0)
    with pytest.raises(ValueError, match="no latency samples"):
        LatencyStats.from_ns([], batch=1)
    with pytest.raises(ValueError, match="batch must be >= 1"):
        LatencyStats.from_ns([MS], batch=0)


def test_time_calls_stops_at_min_runs_once_min_time_is_met():
    calls = []
    policy = TimingPolicy(min_runs=5, min_time_s=0.0, max_time_s=10.0)
    samples = time_calls(lambda: calls.append(1), policy, clock=FakeClock(MS))
    assert samples == [MS] * 5 and len(calls) == 5


def test_time_calls_runs_on_until_min_time():
    policy = TimingPolicy(min_runs=2, min_time_s=0.02, max_time_s=10.0)  # 20 ms
    samples = time_calls(lambda: None, policy, clock=FakeClock(MS))
    # every call advances the clock 2 ms (before/after readings): 10 calls reach 20 ms
    assert len(samples) == 10


def test_time_calls_max_time_wins_but_one_call_always_happens():
    policy = TimingPolicy(min_runs=1000, min_time_s=0.0, max_time_s=0.01)
    assert len(time_calls(lambda: None, policy, clock=FakeClock(MS))) == 5
    slow = TimingPolicy(min_runs=10, min_time_s=0.0, max_time_s=0.001)
    assert len(time_calls(lambda: None, slow, clock=FakeClock(10 * MS))) == 1


def test_warm_up_needs_count_and_time():
    calls = []
    policy = TimingPolicy(warmup_runs=3, warmup_s=0.01)
    runs = warm_up(lambda: calls.append(1), policy, clock=FakeClock(MS))
    assert runs == len(calls) >= 3
    assert warm_up(lambda: None, TimingPolicy(warmup_runs=0, warmup_s=0.0), FakeClock(MS)) == 0


def test_timing_policy_per_round_and_validation():
    policy = TimingPolicy(min_runs=50, min_time_s=1.0, max_time_s=20.0, rounds=4, repeats=2)
    budget = policy.per_round()
    assert (budget.min_runs, budget.min_time_s, budget.max_time_s) == (13, 0.25, 5.0)
    assert (budget.rounds, budget.repeats) == (1, 1)
    with pytest.raises(LowrankEdgeError, match="rounds must be >= 1, got 0"):
        TimingPolicy(rounds=0)
    with pytest.raises(LowrankEdgeError, match="maximum time must be"):
        TimingPolicy(min_time_s=5.0, max_time_s=1.0)


def test_interleaved_order_is_round_robin():
    assert interleaved_order(3, 2) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]


class FakeSession:
    """Records open/run/close in a shared log; `fail_on_run` raises on the first run."""

    def __init__(self, name: str, log: list, fail_on_run: bool = False):
        self.name, self.log, self.fail = name, log, fail_on_run
        log.append(("open", name))

    def run(self):
        if self.fail:
            raise RuntimeError(f"{self.name} cannot take this batch")
        self.log.append(("run", self.name))

    def close(self):
        self.log.append(("close", self.name))


def test_measure_interleaved_visits_models_in_rounds_one_session_at_a_time():
    log: list = []
    openers = [lambda n=n: FakeSession(n, log) for n in "ABC"]
    policy = TimingPolicy(warmup_runs=0, warmup_s=0, min_runs=2, min_time_s=0, rounds=3)
    steps = []
    results = measure_interleaved(
        openers, policy, clock=FakeClock(MS), on_step=lambda *a: steps.append(a)
    )
    opened = [name for event, name in log if event == "open"]
    assert opened == list("ABC" * 3)
    alive = 0
    for event, _ in log:
        alive += {"open": 1, "close": -1}.get(event, 0)
        assert alive <= 1  # only one session alive while timing
    assert steps == [(m, 0, r) for r in range(3) for m in range(3)]
    assert all(m.ok and len(m.samples_ns) == 1 and len(m.samples_ns[0]) == 3 for m in results)


def test_measure_interleaved_records_failures_and_goes_on():
    log: list = []

    def broken_open():
        raise OSError("model file vanished")

    openers = [
        lambda: FakeSession("A", log),
        lambda: FakeSession("B", log, fail_on_run=True),
        broken_open,
        None,  # not measured at all
    ]
    policy = TimingPolicy(warmup_runs=0, warmup_s=0, min_runs=1, min_time_s=0, rounds=2)
    results = measure_interleaved(openers, policy, clock=FakeClock(MS))
    assert results[0].ok and len(results[0].samples_ns[0]) == 2
    assert results[1].error == "RuntimeError: B cannot take this batch"
    assert results[2].error == "OSError: model file vanished"
    assert results[3].error is None and not results[3].ok
    assert log.count(("open", "B")) == 1  # a failed model is skipped in later rounds
    assert ("close", "B") in log  # ... and its session is still closed


def test_measure_interleaved_repeats_the_rounds():
    log: list = []
    openers = [lambda n=n: FakeSession(n, log) for n in "AB"]
    policy = TimingPolicy(warmup_runs=0, warmup_s=0, min_runs=1, min_time_s=0, rounds=2, repeats=3)
    results = measure_interleaved(openers, policy, clock=FakeClock(MS))
    assert [name for event, name in log if event == "open"] == list("AB" * 6)
    assert all(
        len(m.samples_ns) == 3 and all(len(rep) == 2 for rep in m.samples_ns) for m in results
    )
    assert len(repeat_p50s(results[0])) == 3


def _measurement(rounds_ms: list[list[list[float]]]) -> Measurement:
    return Measurement([[[int(v * MS) for v in rnd] for rnd in rep] for rep in rounds_ms])


def test_per_round_ratios_median_and_spread():
    base = _measurement([[[2, 2, 2], [4, 4, 4], [3, 3, 3], [2, 2, 2]]])
    model = _measurement([[[1, 1, 1], [1, 1, 1], [3, 3, 3], [1, 1, 1]]])
    ratios = per_round_ratios(base, model)
    assert ratios == pytest.approx([2.0, 4.0, 1.0, 2.0])
    summary = summarise_ratios(ratios)
    assert summary.median == pytest.approx(2.0)
    assert (summary.q1, summary.q3) == (pytest.approx(1.75), pytest.approx(2.5))
    assert (summary.min, summary.max, summary.rounds) == (1.0, 4.0, 4)
    assert summarise_ratios([]) is None


def test_ratios_pair_rounds_only_where_both_were_timed():
    base = _measurement([[[2], [2], [2]]])
    model = _measurement([[[1], [1]]])  # failed before its third round
    assert per_round_ratios(base, model) == pytest.approx([2.0, 2.0])


def test_repeat_p50s_and_relative_spread():
    m = _measurement([[[1, 2, 3], [3]], [[4, 4], [6]]])
    assert repeat_p50s(m) == pytest.approx([2.5, 4.0])
    assert relative_spread([2.0, 2.5, 3.0]) == pytest.approx(0.4)
    assert relative_spread([2.0]) is None


def test_spread_warning_names_the_configuration_above_five_percent():
    record = {
        "status": "ok", "backend": "keras", "model": "e50", "variant": "float32",
        "threads": 1, "batch": 32, "device": "vm-a", "repeat_spread": 0.283,
    }  # fmt: skip
    assert spread_warning(record) == (
        "p50 spread over repeats 28.3% > 5%: keras e50 float32 threads=1 batch=32 on vm-a; "
        "its latency and speedup are uncertain by about as much"
    )
    for quiet in (0.05, 0.032, None):  # at the limit, below it, or one repeat only
        assert spread_warning(record | {"repeat_spread": quiet}) is None
    assert spread_warning(record | {"status": "failed"}) is None


def test_theoretical_speedup_and_flags():
    assert theoretical_speedup(1000, 250) == 4.0
    assert theoretical_speedup(None, 250) is None and theoretical_speedup(1000, 0) is None
    assert comparison_flags(0.9, 0.3, is_baseline=False) == [FLAG_SLOWER, FLAG_LOW_EFFICIENCY]
    assert comparison_flags(1.5, 0.75, is_baseline=False) == []
    assert comparison_flags(0.9, 0.3, is_baseline=True) == []


def test_make_batch_is_seeded_and_tiles():
    samples = np.arange(5 * 2, dtype=np.float32).reshape(5, 2)
    batch = make_batch(samples, 12, seed=3)
    assert batch.shape == (12, 2)
    assert np.array_equal(batch, make_batch(samples, 12, seed=3))
    firsts = {tuple(row) for row in batch[:5]}
    assert firsts == {tuple(row) for row in samples}  # every sample once before repeating
    assert np.array_equal(batch[5:10], batch[:5])
    assert not np.array_equal(make_batch(samples, 5, seed=4), make_batch(samples, 5, seed=3))


def test_progress_estimates_time_left_from_pace():
    times = itertools.count(0, 10)  # every clock reading is 10 s later
    stream = io.StringIO()
    progress = Progress(4, stream=stream, clock=lambda: float(next(times)))
    assert progress.estimate_left() is None
    progress.step("litert t=1 b=1", "| base round 1/2")
    progress.step("litert t=1 b=1", "| e50 round 1/2")  # one step done
    assert progress.done == 1
    # start at 0; now at 40: 40 s for 1 step, 3 left -> 120 s
    assert progress.estimate_left() == pytest.approx(120.0)
    assert "litert t=1 b=1" in stream.getvalue()
    assert format_duration(125) == "2:05" and format_duration(3725) == "1:02:05"
