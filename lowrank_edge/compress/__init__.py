"""SVD low-rank compression of Keras models in three public steps.

    analysis = analyse_model(model)                  # analyse: candidates and spectra
    plan = choose_ranks(analysis, EnergyPolicy(0.9)) # choose ranks: one decision per layer
    result = apply_plan(analysis, plan)              # apply: stock factor pairs, report

`compress_model(model, policy)` runs all three. The result holds the new model (stock
Conv2D/Dense layers only, factor pairs named `<layer>_lr_a` / `<layer>_lr_b`) and a
`LayerReport` per Conv2D/Dense-like layer. The cost model (`cost`), rank policies
(`policies`), rounding and break-even (`rank_steps`) and layer splitting (`split`) are
separate modules so any one can be swapped.
"""

from lowrank_edge.compress.analyse import Candidate, ModelAnalysis, analyse_model
from lowrank_edge.compress.apply import apply_plan
from lowrank_edge.compress.choose import LayerDecision, RankPlan, choose_ranks, plan_from_ranks
from lowrank_edge.compress.policies import (
    EnergyPolicy,
    FixedRankPolicy,
    FractionPolicy,
    RankPolicy,
    describe_policy,
)
from lowrank_edge.compress.result import (
    FACTORISED,
    KEPT_BREAK_EVEN,
    KEPT_EXCLUDED,
    CompressionResult,
    CompressionTotals,
    LayerReport,
)
from lowrank_edge.compress.spectrum import LayerSpectrum, energy_fraction
from lowrank_edge.compress.split import FIRST_SUFFIX, SECOND_SUFFIX, LayerFactors
from lowrank_edge.compress.steps import Budget, compress_model
from lowrank_edge.errors import CompressionError

__all__ = [
    "Budget",
    "FACTORISED",
    "FIRST_SUFFIX",
    "KEPT_BREAK_EVEN",
    "KEPT_EXCLUDED",
    "SECOND_SUFFIX",
    "Candidate",
    "CompressionError",
    "CompressionResult",
    "CompressionTotals",
    "EnergyPolicy",
    "FixedRankPolicy",
    "FractionPolicy",
    "LayerDecision",
    "LayerFactors",
    "LayerReport",
    "LayerSpectrum",
    "ModelAnalysis",
    "RankPlan",
    "RankPolicy",
    "analyse_model",
    "apply_plan",
    "choose_ranks",
    "compress_model",
    "describe_policy",
    "energy_fraction",
    "plan_from_ranks",
]
