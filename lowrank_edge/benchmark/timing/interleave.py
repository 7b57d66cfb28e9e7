"""Time several models in interleaved rounds (A B C A B C ...) so drift hits all alike.

Each model is opened, warmed up, timed and closed in its turn, so only one
session is alive while timing and opening cost is never timed. A model that
fails (open or run) is recorded with its error and skipped in later rounds;
the others go on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from lowrank_edge.benchmark.timing.calls import Clock, TimingPolicy, time_calls, warm_up
from lowrank_edge.errors import LowrankEdgeError

MAX_ERROR_CHARS = 2000


class Session(Protocol):
    """An opened model bound to its input: `run()` does one timed inference."""

    def run(self) -> object: ...

    def close(self) -> None: ...


Opener = Callable[[], Session]
StepCallback = Callable[[int, int, int], None]  # (model index, repeat, round)


@dataclass
class Measurement:
    """Raw latencies of one model in one configuration: `samples_ns[repeat][round]`."""

    samples_ns: list[list[list[int]]] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when every round was timed without an error."""
        return self.error is None and any(self.samples_ns)

    def pooled_ns(self) -> list[int]:
        """All latencies of all repeats and rounds, in one list."""
        return [s for repeat in self.samples_ns for rnd in repeat for s in rnd]

    def to_dict(self) -> dict:
        """JSON-ready form (used by the Keras worker to hand results to the parent)."""
        return {"samples_ns": self.samples_ns, "error": self.error}

    @classmethod
    def from_dict(cls, data: dict) -> Measurement:
        """Inverse of `to_dict`."""
        return cls(samples_ns=data.get("samples_ns") or [], error=data.get("error"))


def describe_error(error: BaseException) -> str:
    """One readable line for a failure: our errors as they are, others with their type."""
    text = str(error) if isinstance(error, LowrankEdgeError) else f"{type(error).__name__}: {error}"
    text = " ".join(text.split())
    return text[:MAX_ERROR_CHARS]


def interleaved_order(n_models: int, rounds: int) -> list[tuple[int, int]]:
    """The (round, model) visiting order: every model once per round, in the given order."""
    return [(rnd, model) for rnd in range(rounds) for model in range(n_models)]


def measure_interleaved(
    openers: Sequence[Opener | None],
    policy: TimingPolicy,
    *,
    clock: Clock = time.perf_counter_ns,
    on_step: StepCallback | None = None,
) -> list[Measurement]:
    """Time every opener's session in `policy.repeats` x `policy.rounds` interleaved rounds.

    `None` in `openers` marks a model that is not measured (its Measurement stays empty).
    """
    budget = policy.per_round()
    results = [Measurement() for _ in openers]
    for repeat in range(policy.repeats):
        for measurement in results:
            measurement.samples_ns.append([])
        for rnd, index in interleaved_order(len(openers), policy.rounds):
            opener, measurement = openers[index], results[index]
            if opener is None or measurement.error is not None:
                continue
            if on_step is not None:
                on_step(index, repeat, rnd)
            try:
                session = opener()
            except Exception as error:  # any runtime failure is recorded, the sweep goes on
                measurement.error = describe_error(error)
                continue
            try:
                warm_up(session.run, budget, clock)
                measurement.samples_ns[repeat].append(time_calls(session.run, budget, clock))
            except Exception as error:
                measurement.error = describe_error(error)
            finally:
                session.close()
    return results
