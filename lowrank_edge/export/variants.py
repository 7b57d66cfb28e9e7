"""What can be exported (formats, TFLite variants) and the parity tolerance each must meet.

The tolerance table is the single source of the pass/fail rule: the parity check reads it, the
manifest records it beside the measured figures, and the README quotes it.
"""

from __future__ import annotations

from dataclasses import dataclass

FORMATS = ("tflite", "onnx")
TFLITE_VARIANTS = ("float32", "float16", "int8-dynamic", "int8-full")
ONNX_VARIANT = "float32"  # the ONNX export is float32 only
INT8_IO_TYPES = ("uint8", "int8")
INPUT_NAME = "image"
OUTPUT_NAME = "logits"


@dataclass(frozen=True)
class Tolerance:
    """Pass rule: max |logit difference| (float formats), argmax agreement, accuracy difference.

    `accuracy_points` bounds |artifact accuracy - Keras accuracy| in percentage points
    (checked only when the samples have labels); None means not checked.
    """

    max_abs_diff: float | None
    argmax_agreement: float
    accuracy_points: float | None

    def to_dict(self) -> dict[str, float]:
        """The non-None limits, for the manifest."""
        limits = {
            "max_abs_diff": self.max_abs_diff,
            "argmax_agreement": self.argmax_agreement,
            "accuracy_points": self.accuracy_points,
        }
        return {key: value for key, value in limits.items() if value is not None}


_FLOAT = Tolerance(max_abs_diff=1e-4, argmax_agreement=1.0, accuracy_points=None)
_QUANTIZED = Tolerance(max_abs_diff=None, argmax_agreement=0.99, accuracy_points=0.5)

# variant -> tolerance; the same table for every format (ONNX is float32).
TOLERANCES: dict[str, Tolerance] = {
    "float32": _FLOAT,
    "float16": _QUANTIZED,
    "int8-dynamic": _QUANTIZED,
    "int8-full": _QUANTIZED,
}


def artifact_id(fmt: str, variant: str) -> str:
    """The manifest id of an artifact, e.g. `tflite-int8-full`, `onnx-float32`."""
    return f"{fmt}-{variant}"


def artifact_file(stem: str, fmt: str, variant: str) -> str:
    """The artifact's file name in the export folder, e.g. `e75-int8-full.tflite`, `e75.onnx`."""
    if fmt == "onnx":
        return f"{stem}.onnx"
    return f"{stem}-{variant}.tflite"
