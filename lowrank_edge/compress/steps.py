"""`compress_model`: the three public steps in order, for the common per-layer-policy case.

    analysis = analyse_model(model, include, exclude)       # step 1: candidates, spectra
    plan = choose_ranks(analysis, policy, rounding=8)       # step 2: one decision per layer
    result = apply_plan(analysis, plan)                     # step 3: new model and report

Call the steps yourself to swap one, e.g. a budget allocator for step 2.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from lowrank_edge.compress.analyse import analyse_model
from lowrank_edge.compress.apply import apply_plan
from lowrank_edge.compress.choose import choose_ranks
from lowrank_edge.compress.policies import RankPolicy
from lowrank_edge.compress.result import CompressionResult


def compress_model(
    model: keras.Model,
    policy: RankPolicy,
    *,
    rounding: int | None = None,
    break_even: bool = True,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> CompressionResult:
    """Factorise the Conv2D/Dense layers of a Sequential/Functional model; return a new model.

    `policy` picks each layer's rank; `rounding` rounds it up to a multiple (capped at full
    rank); with `break_even` a layer where r*(m+n) >= m*n stays dense. `include`/`exclude` are
    fnmatch patterns on layer paths/names. The input model is not modified.
    """
    analysis = analyse_model(model, include, exclude)
    plan = choose_ranks(analysis, policy, rounding=rounding, break_even=break_even)
    return apply_plan(analysis, plan)
