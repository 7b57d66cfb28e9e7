"""SVD low-rank compression of Keras models: rank policies, layer splitting, model rewrite.

Entry point: `compress_model(model, EnergyPolicy(0.95), rounding=8)` returns a
`CompressionResult` with the new model (stock Conv2D/Dense layers only, factor pairs named
`<layer>_lr_a` / `<layer>_lr_b`) and a `LayerReport` per Conv2D/Dense-like layer.
"""

from lowrank_edge.compress.core import compress_model
from lowrank_edge.compress.errors import CompressionError
from lowrank_edge.compress.policies import (
    EnergyPolicy,
    FixedRankPolicy,
    FractionPolicy,
    RankPolicy,
    describe_policy,
)
from lowrank_edge.compress.report import (
    FACTORISED,
    KEPT_BREAK_EVEN,
    KEPT_EXCLUDED,
    CompressionResult,
    CompressionTotals,
    LayerReport,
)
from lowrank_edge.compress.spectrum import LayerSpectrum, energy_fraction
from lowrank_edge.compress.split import FIRST_SUFFIX, SECOND_SUFFIX

__all__ = [
    "FACTORISED",
    "FIRST_SUFFIX",
    "KEPT_BREAK_EVEN",
    "KEPT_EXCLUDED",
    "SECOND_SUFFIX",
    "CompressionError",
    "CompressionResult",
    "CompressionTotals",
    "EnergyPolicy",
    "FixedRankPolicy",
    "FractionPolicy",
    "LayerReport",
    "LayerSpectrum",
    "RankPolicy",
    "compress_model",
    "describe_policy",
    "energy_fraction",
]
