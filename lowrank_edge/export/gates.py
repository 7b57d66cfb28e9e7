"""The gate each exported artifact must pass, per kind of variant, and its verdict.

- float32, float16: numeric parity with Keras on the parity samples (`TOLERANCES`), gate
  `parity`.
- quantized (int8-*) with labelled data: the full-test accuracy drop against the float32 Keras
  model, at most `max_quant_drop` points, gate `test-accuracy` (parity figures recorded only).
- quantized without labelled data: argmax agreement with the float model's outputs on the
  parity samples (`FLOAT_AGREEMENT`), gate `float-agreement`.

A failed gate is a measured fact about one file, not a broken export: the exporter marks the
artifact `"passed": false` (or leaves it out with --strict) and writes the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.export.parity import parity_failures
from lowrank_edge.export.variants import (
    QUANTIZED_VARIANTS,
    RECORD_ONLY,
    TOLERANCES,
    Tolerance,
)
from lowrank_edge.runtime.manifest import (
    GATE_FLOAT_AGREEMENT,
    GATE_PARITY,
    GATE_TEST_ACCURACY,
    AccuracyInfo,
    Parity,
)

MAX_DROP_KEY = "max_drop_points"


@dataclass(frozen=True)
class Verdict:
    """Which gate an artifact met or missed, its limits and, if missed, why (one phrase)."""

    gate: str | None  # None: not checked (export without verification)
    passed: bool
    limits: dict[str, float] = field(default_factory=dict)
    failure: str | None = None


NOT_CHECKED = Verdict(gate=None, passed=True)


def check_max_quant_drop(points: float) -> float:
    """`points` as a float when it is a finite number >= 0, else a clear error."""
    if isinstance(points, bool) or not isinstance(points, (int, float)):
        raise LowrankEdgeError(f"--max-quant-drop: expected points >= 0, got {points!r}")
    if not math.isfinite(points) or points < 0:
        raise LowrankEdgeError(f"--max-quant-drop: expected points >= 0, got {points}")
    return float(points)


def parity_tolerance(variant: str, labelled: bool) -> Tolerance:
    """The limits the parity figures of `variant` are held to: none for a quantized variant
    judged on labelled test data (its gate is the accuracy drop)."""
    if variant in QUANTIZED_VARIANTS and labelled:
        return RECORD_ONLY
    return TOLERANCES[variant]


def judge(
    variant: str,
    parity: Parity | None,
    test_accuracy: AccuracyInfo | None,
    max_quant_drop: float,
) -> Verdict:
    """The verdict of `variant`'s gate on its measured figures (see the module doc)."""
    if parity is None:
        return NOT_CHECKED
    if variant in QUANTIZED_VARIANTS and test_accuracy is not None:
        return _accuracy_drop(test_accuracy, max_quant_drop)
    gate = GATE_FLOAT_AGREEMENT if variant in QUANTIZED_VARIANTS else GATE_PARITY
    tolerance = TOLERANCES[variant]
    problems = parity_failures(parity, tolerance)
    return Verdict(
        gate=gate,
        passed=not problems,
        limits=tolerance.to_dict(),
        failure=", ".join(problems) if problems else None,
    )


def _accuracy_drop(accuracy: AccuracyInfo, max_quant_drop: float) -> Verdict:
    drop = (accuracy.keras_accuracy - accuracy.accuracy) * 100
    passed = drop <= max_quant_drop + 1e-9
    failure = None
    if not passed:
        failure = (
            f"test accuracy {accuracy.accuracy:.2%} vs Keras float32 {accuracy.keras_accuracy:.2%} "
            f"on {accuracy.images:,} images: drop {drop:.2f} points > {max_quant_drop:g} "
            "(--max-quant-drop)"
        )
    return Verdict(GATE_TEST_ACCURACY, passed, {MAX_DROP_KEY: max_quant_drop}, failure)
