"""`compress_model`: the three public steps in order, with the factoriser and budget options.

    analysis = analyse_model(model, include, exclude)        # 1: candidates and spectra
    analysis = whitened_analysis(analysis, images)           #    (data-aware: output spectra)
    plan = choose_ranks(analysis, policy, rounding=8)        # 2: per-layer policy, or
    plan = allocate_ranks(analysis, 0.33, budget="macs")     #    a budget over all layers
    fitted = fitted_factors(analysis, plan, images)          # 3: data-aware weights
    result = apply_plan(analysis, plan, fitted.factors)      #    new model and report
    recalibrate_batchnorm(result.model, images)              #    optional

Call the steps yourself to swap one; `compress_model` runs them for the common cases.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
import numpy as np

from lowrank_edge.benchmark.reporting.progress import Progress
from lowrank_edge.compress.allocate import BUDGETS, CostFn, allocate_ranks, check_fraction
from lowrank_edge.compress.analyse import ModelAnalysis, analyse_model
from lowrank_edge.compress.apply import apply_plan
from lowrank_edge.compress.batchnorm_stats import recalibrate_batchnorm
from lowrank_edge.compress.choose import RankPlan, choose_ranks
from lowrank_edge.compress.data_aware import (
    FACTORISERS,
    fitted_factors,
    whitened_analysis,
)
from lowrank_edge.compress.eval_curves import accuracy_drop_curves
from lowrank_edge.compress.policies import RankPolicy
from lowrank_edge.compress.result import CompressionResult
from lowrank_edge.compress.whiten import DEFAULT_DAMPING
from lowrank_edge.errors import CompressionError


@dataclass(frozen=True)
class Budget:
    """Keep at most `fraction` of the model's MACs ("macs") or parameters ("params")."""

    kind: str
    fraction: float

    def __post_init__(self) -> None:
        if self.kind not in BUDGETS:
            raise CompressionError(f"budget must be one of {BUDGETS}, got {self.kind!r}")
        check_fraction(self.fraction, self.kind)


@dataclass(frozen=True)
class CostBudget:
    """Keep at most `fraction` of the model's cost under a cost model of your own (latency).

    `cost_for(analysis)` gives (cost of a layer at a rank, cost of everything the allocation
    cannot change); a rank that costs math.inf is not offered. `name` labels the budget.
    """

    name: str
    fraction: float
    cost_for: Callable[[ModelAnalysis], tuple[CostFn, float]]

    def __post_init__(self) -> None:
        check_fraction(self.fraction, self.name)

    def __str__(self) -> str:
        return f"a {self.name} budget: keep at most {self.fraction:g} of the original's"


PlanReview = Callable[[ModelAnalysis, RankPlan], RankPlan]


def _check_data_options(factoriser: str, calibration, bn_recalibrate: bool) -> None:
    if factoriser not in FACTORISERS:
        raise CompressionError(f"factoriser must be one of {FACTORISERS}, got {factoriser!r}")
    if (factoriser == "whitened" or bn_recalibrate) and (
        calibration is None or len(calibration) == 0
    ):
        raise CompressionError(
            "the whitened factoriser and BatchNorm re-estimation need calibration images "
            "(pass a dataset, or use the plain 'svd' factoriser without re-estimation)"
        )


def plan_compression(
    model: keras.Model,
    policy: RankPolicy | Budget | CostBudget,
    *,
    rounding: int | None = None,
    break_even: bool = True,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    factoriser: str = "svd",
    calibration: np.ndarray | None = None,
    damping: float = DEFAULT_DAMPING,
    evaluation: tuple[np.ndarray, np.ndarray] | None = None,
    seconds: dict[str, float] | None = None,
) -> tuple[ModelAnalysis, RankPlan]:
    """Steps 1 and 2 only: the analysis (output spectra when whitened) and the rank plan.

    What `lowrank-edge ranks` shows before anything is written. With `evaluation` (validation
    images and labels) a budget is allocated on measured accuracy drops per layer and
    candidate rank (AIMET-style) instead of on the spectra. `seconds`, if given, gets the
    wall time of each phase ("analyse", "calibration", "allocation").
    """
    _check_data_options(factoriser, calibration, False)
    clock = _PhaseClock(seconds)
    analysis = analyse_model(model, include, exclude)
    clock.lap("analyse")
    if factoriser == "whitened":
        analysis = whitened_analysis(analysis, calibration, damping)
        clock.lap("calibration")
    if isinstance(policy, Budget | CostBudget):
        errors = None
        if evaluation is not None:
            errors = accuracy_drop_curves(analysis, *evaluation, calibration, damping=damping)
        if isinstance(policy, Budget):
            budget = {"budget": policy.kind}
        else:
            cost, fixed = policy.cost_for(analysis)
            budget = {"budget": policy.name, "cost": cost, "fixed_cost": fixed}
        plan = allocate_ranks(analysis, policy.fraction, rounding=rounding, errors=errors, **budget)
        plan.settings["sensitivity"] = "none" if evaluation is None else "eval"
    else:
        plan = choose_ranks(analysis, policy, rounding=rounding, break_even=break_even)
    clock.lap("allocation")
    return analysis, plan


class _PhaseClock:
    """Writes the seconds since the previous lap into `seconds[name]` (nothing without one)."""

    def __init__(self, seconds: dict[str, float] | None):
        self.seconds, self.last = seconds, time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        if self.seconds is not None:
            self.seconds[name] = round(now - self.last, 2)
        self.last = now


def compress_model(
    model: keras.Model,
    policy: RankPolicy | Budget | CostBudget,
    *,
    rounding: int | None = None,
    break_even: bool = True,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    factoriser: str = "svd",
    calibration: np.ndarray | None = None,
    sequential: bool = True,
    bn_recalibrate: bool = False,
    damping: float = DEFAULT_DAMPING,
    refit_dense: bool = True,
    intercept: bool = False,
    evaluation: tuple[np.ndarray, np.ndarray] | None = None,
    review: PlanReview | None = None,
    progress: Progress | None = None,
) -> CompressionResult:
    """Factorise the Conv2D/Dense layers of a Sequential/Functional model; return a new model.

    `policy` picks each layer's rank, or a `Budget` allocates ranks over all layers at once.
    `rounding` rounds ranks up to a multiple (capped at full rank); with `break_even` a layer
    where r*(m+n) >= m*n stays dense. `include`/`exclude` are fnmatch patterns on layer
    paths/names. `factoriser="whitened"` needs `calibration` images (from the training split):
    ranks are chosen on output spectra and factors are fitted to the original outputs, layer
    by layer with `sequential`. `review(analysis, plan)` may change the plan before any
    factor is fitted (the latency back-off measures it there). `progress` shows the
    layer-by-layer fit, one step per layer. The input model is not modified. The result's
    settings["seconds"] holds the wall time of each phase.
    """
    _check_data_options(factoriser, calibration, bn_recalibrate)
    start = time.perf_counter()
    seconds: dict[str, float] = {}
    analysis, plan = plan_compression(
        model,
        policy,
        rounding=rounding,
        break_even=break_even,
        include=include,
        exclude=exclude,
        factoriser=factoriser,
        calibration=calibration,
        damping=damping,
        evaluation=evaluation,
        seconds=seconds,
    )
    if review is not None:
        plan = review(analysis, plan)
    chosen = time.perf_counter()
    clock = _PhaseClock(seconds)
    whitened = factoriser == "whitened"
    fitted = None
    if whitened:
        fitted = fitted_factors(
            analysis,
            plan,
            calibration,
            damping=damping,
            sequential=sequential,
            refit_dense=refit_dense,
            intercept=intercept,
            progress=progress,
        )
        clock.lap("fit")
    settings = {
        "factoriser": factoriser,
        "calibration_images": 0 if calibration is None else len(calibration),
        "sequential": bool(sequential and whitened),
        "damping": damping if whitened else None,
        "bn_recalibrate": bool(bn_recalibrate),
        "refit_dense": bool(refit_dense and whitened and sequential),
        "intercept": bool(intercept and whitened),
    }
    result = apply_plan(
        analysis,
        plan,
        fitted.factors if fitted else None,
        extra_settings=settings,
        dense=fitted.dense if fitted else None,
    )
    clock.lap("apply")
    if bn_recalibrate:
        recalibrate_batchnorm(result.model, calibration)
        clock.lap("bn_recalibrate")
    result.settings["seconds"] = {
        "analyse_and_choose": round(chosen - start, 2),
        **seconds,
        "total": round(time.perf_counter() - start, 2),
    }
    return result
