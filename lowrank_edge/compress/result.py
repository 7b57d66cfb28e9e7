"""What a compression did: one `LayerReport` per reported layer and a `CompressionResult`.

Params and MACs follow `lowrank_edge.compress.cost` (kernel MACs only, per sample, summed
over calls).
`chosen_rank` is the policy's rank after capping and rounding; `rank_kept` is the rank the
layer has in the new model (the full rank when it stays dense, None when unsupported); the
energy fractions are those kept at `rank_kept` (sum s_i^2 and sum s_i shares).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import keras

FACTORISED = "factorised"
KEPT_BREAK_EVEN = "kept: break-even"
KEPT_EXCLUDED = "kept: excluded by pattern"
KEPT_BY_BUDGET = "kept: dense within the budget"
KEPT_BACKED_OFF = "kept: backed off after measuring"


def kept_unsupported(reason: str) -> str:
    """Status of a layer that cannot be factorised, e.g. 'kept: unsupported (DepthwiseConv2D)'."""
    return f"kept: unsupported ({reason})"


@dataclass(frozen=True)
class LayerReport:
    """One layer's outcome. Shapes and ranks are None for unsupported layers."""

    name: str
    class_name: str
    status: str
    kernel_shape: tuple[int, ...] | None
    matrix_shape: tuple[int, int] | None
    full_rank: int | None
    chosen_rank: int | None
    rank_kept: int | None
    energy_squared: float | None
    energy_abs: float | None
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int

    @property
    def factorised(self) -> bool:
        """True if the layer was replaced by a factor pair."""
        return self.status == FACTORISED

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (tuples become lists)."""
        data = asdict(self)
        for key in ("kernel_shape", "matrix_shape"):
            if data[key] is not None:
                data[key] = list(data[key])
        return data


@dataclass(frozen=True)
class CompressionTotals:
    """Whole-model params and MACs before and after (all layers, not only reported ones)."""

    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    layers_factorised: int
    layers_kept: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data with the after/before ratios."""
        return {
            **asdict(self),
            "params_ratio": self.params_after / self.params_before if self.params_before else None,
            "macs_ratio": self.macs_after / self.macs_before if self.macs_before else None,
        }


@dataclass(frozen=True, eq=False)
class CompressionResult:
    """The compressed model, what happened to each layer, the settings used and the totals."""

    model: keras.Model
    layers: list[LayerReport]
    settings: dict[str, Any]
    totals: CompressionTotals
    warnings: list[str] = field(default_factory=list)

    def layer(self, name: str) -> LayerReport:
        """The report of the layer with this path or name (KeyError if none)."""
        for report in self.layers:
            if name in (report.name, report.name.rsplit("/", 1)[-1]):
                return report
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (no model): written as `<model>.compression.json`."""
        return {
            "model": self.model.name,
            "settings": self.settings,
            "totals": self.totals.to_dict(),
            "layers": [report.to_dict() for report in self.layers],
            "warnings": list(self.warnings),
        }
