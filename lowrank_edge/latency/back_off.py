"""The no-slowdown loop: measure a plan end to end, drop factorisations until it pays.

`back_off` measures the planned model against the original; while it is slower than the
original or short of its target, it drops the factorisation with the smallest predicted
gain (from the latency table) and measures again. It recommends the first plan that meets
the target, else the fastest one that measured at least as fast as the original, else the
original itself: never a model that measured slower on its own target.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from lowrank_edge.compress.choose import LayerDecision, RankPlan
from lowrank_edge.compress.result import KEPT_BACKED_OFF


@dataclass(frozen=True)
class SpeedCheck:
    """One end-to-end measurement: the factorised ranks, predicted and measured speedup."""

    ranks: dict[str, int]
    measured: float  # median over interleaved rounds of p50(original) / p50(model)
    q1: float
    q3: float
    predicted: float | None = None
    dropped: str | None = None  # the layer made dense just before this check
    note: str | None = None  # how this plan was made, when not by dropping a layer

    def to_dict(self) -> dict:
        """Plain JSON-ready fields."""
        return {
            "ranks": dict(self.ranks),
            "measured_speedup": self.measured,
            "measured_q1": self.q1,
            "measured_q3": self.q3,
            "predicted_speedup": self.predicted,
            "dropped": self.dropped,
            "note": self.note,
        }


@dataclass(frozen=True)
class BackOff:
    """Every check in order, which one is recommended (None: the original) and why."""

    checks: tuple[SpeedCheck, ...]
    chosen: int | None
    target: float
    verdict: str

    def to_dict(self) -> dict:
        """Plain JSON-ready fields."""
        return {
            "target_speedup": self.target,
            "checks": [c.to_dict() for c in self.checks],
            "chosen": self.chosen,
            "verdict": self.verdict,
        }


Measure = Callable[[RankPlan], SpeedCheck]


def drop_layer(plan: RankPlan, path: str, full_rank: int) -> RankPlan:
    """`plan` with the layer at `path` kept dense (status KEPT_BACKED_OFF)."""
    decisions = tuple(
        LayerDecision(path, KEPT_BACKED_OFF, None, full_rank) if d.path == path else d
        for d in plan.decisions
    )
    return replace(plan, decisions=decisions, settings=dict(plan.settings))


def back_off(
    plan: RankPlan,
    gains: Mapping[str, float],
    measure: Measure,
    full_ranks: Mapping[str, int],
    target: float = 1.0,
    max_checks: int = 4,
) -> tuple[RankPlan, BackOff]:
    """The plan to recommend and the record of every check.

    `gains` maps each factorised layer to its predicted gain (ms, may be negative); the
    smallest goes first. At most `max_checks` measurements are made. When no factorised
    plan measured at least as fast as the original, the plan returned keeps every layer
    dense (the original's structure).
    """
    goal = max(1.0, target)
    plans, checks = [plan], []
    current, dropped = plan, None
    while True:
        check = replace(measure(current), dropped=dropped)
        checks.append(check)
        if check.measured >= goal or len(current.ranks) <= 1 or len(checks) >= max_checks:
            break  # (dropping the last factorisation would give the original back)
        dropped = min(current.ranks, key=lambda path: (gains.get(path, 0.0), path))
        current = drop_layer(current, dropped, full_ranks[dropped])
        plans.append(current)
    met = [i for i, c in enumerate(checks) if c.measured >= goal and c.ranks]
    faster = [i for i, c in enumerate(checks) if c.measured >= 1.0 and c.ranks]
    if met:
        chosen = met[0]
        verdict = f"meets the target: measured {checks[chosen].measured:.2f}x >= {goal:.2f}x"
    elif faster:
        chosen = max(faster, key=lambda i: checks[i].measured)
        verdict = (
            f"target {goal:.2f}x missed: the fastest plan measured "
            f"{checks[chosen].measured:.2f}x (not slower than the original)"
        )
    else:
        chosen = None
        verdict = "no factorised plan measured at least as fast as the original: keep the original"
    record = BackOff(tuple(checks), chosen, target, verdict)
    if chosen is not None:
        return plans[chosen], record
    dense = plan
    for path in plan.ranks:
        dense = drop_layer(dense, path, full_ranks[path])
    return dense, record


# A plan measured this much above its target leaves room to give compression back.
RELAX_MARGIN = 0.05


def relaxed_fraction(fraction: float, check: SpeedCheck, target: float) -> float | None:
    """A looser latency fraction calibrated on a measurement, or None if there is no room.

    The table predicted `check.predicted` for a plan that measured `check.measured`: on this
    runtime the table overstates the plan's latency by predicted/measured. Scaling the
    fraction by measured / (predicted x target) aims the next allocation at `target` itself.
    """
    if check.predicted is None or check.measured < target * (1.0 + RELAX_MARGIN):
        return None
    looser = min(1.0, check.measured / (check.predicted * target))
    return looser if looser > fraction else None


def relax(
    plan: RankPlan,
    record: BackOff,
    fraction: float,
    reallocate: Callable[[float], RankPlan],
    measure: Measure,
) -> tuple[RankPlan, BackOff]:
    """When the chosen plan beat its target by more than RELAX_MARGIN, allocate once more at
    the calibrated looser fraction and keep that plan if it still measures at its target
    (less compression, so less accuracy lost); otherwise keep `plan`."""
    chosen = record.checks[record.chosen] if record.chosen is not None else None
    looser = None if chosen is None else relaxed_fraction(fraction, chosen, record.target)
    if looser is None:
        return plan, record
    candidate = reallocate(looser)
    if candidate.ranks == plan.ranks:
        return plan, record
    check = replace(measure(candidate), note=f"re-allocated at latency {looser:.3f}")
    checks = (*record.checks, check)
    if check.measured < max(1.0, record.target):
        return plan, replace(record, checks=checks)
    verdict = (
        f"meets the target after a looser allocation calibrated on the first measurement: "
        f"measured {check.measured:.2f}x >= {max(1.0, record.target):.2f}x"
    )
    return candidate, BackOff(checks, len(checks) - 1, record.target, verdict)
