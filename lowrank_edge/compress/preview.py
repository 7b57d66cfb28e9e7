"""A rank plan as a table, before anything is rewritten: per layer the rank, MACs, params and
the predicted relative error (the share of the layer's spectrum the rank drops; its relative
output error on the calibration images when the spectrum is the whitened one)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from lowrank_edge.compress.allocate import relative_error
from lowrank_edge.compress.analyse import ModelAnalysis
from lowrank_edge.compress.choose import RankPlan
from lowrank_edge.compress.cost import model_cost


@dataclass(frozen=True)
class PlanRow:
    """One candidate layer in a plan (ranks and costs are None for unsupported layers)."""

    layer: str
    status: str
    full_rank: int | None
    rank: int | None
    macs_before: int | None
    macs_after: int | None
    params_after: int | None
    predicted_error: float | None


def plan_rows(analysis: ModelAnalysis, plan: RankPlan) -> list[PlanRow]:
    """One row per candidate layer, in graph order."""
    rows = []
    for candidate in analysis.candidates:
        decision = plan.decision(candidate.path)
        spectrum = candidate.spectrum
        if spectrum is None:
            rows.append(
                PlanRow(candidate.path, decision.status, None, None, None, None, None, None)
            )
            continue
        rank = decision.rank_kept if decision.factorised else None
        rows.append(
            PlanRow(
                layer=candidate.path,
                status=decision.status,
                full_rank=spectrum.full_rank,
                rank=decision.rank_kept,
                macs_before=spectrum.macs,
                macs_after=spectrum.macs if rank is None else spectrum.macs_at_rank(rank),
                params_after=spectrum.params if rank is None else spectrum.params_at_rank(rank),
                predicted_error=relative_error(spectrum, rank),
            )
        )
    return rows


def plan_totals(analysis: ModelAnalysis, rows: list[PlanRow]) -> dict:
    """Whole-model MACs and params before and as planned (fixed layers included)."""
    whole = model_cost(analysis.model)
    planned = [r for r in rows if r.macs_before is not None]
    macs = whole.macs - sum(r.macs_before for r in planned) + sum(r.macs_after for r in planned)
    dense_params = sum(c.spectrum.params for c in analysis.candidates if c.spectrum is not None)
    params = whole.params - dense_params + sum(r.params_after for r in planned)
    return {
        "macs_before": whole.macs,
        "macs_after": macs,
        "macs_kept": macs / whole.macs if whole.macs else None,
        "params_before": whole.params,
        "params_after": params,
        "params_kept": params / whole.params if whole.params else None,
    }


def rows_to_dicts(rows: list[PlanRow]) -> list[dict]:
    """Plain JSON-ready rows."""
    return [asdict(row) for row in rows]
