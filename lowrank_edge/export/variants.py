"""What can be exported (formats, TFLite and ONNX variants) and the limits of their gates.

Float variants are held to numeric parity with Keras (`TOLERANCES`); quantized variants to
their full-test accuracy drop (`DEFAULT_MAX_QUANT_DROP`), or without labelled data to argmax
agreement with the float model (`FLOAT_AGREEMENT`). `export.gates` applies them; the manifest
records them beside the measured figures, and the README quotes them.
"""

from __future__ import annotations

from dataclasses import dataclass

FORMATS = ("tflite", "onnx")
TFLITE_VARIANTS = ("float32", "float16", "int8-dynamic", "int8-full")
# ONNX: the tf2onnx float32 model and two int8 models made from it by onnxruntime.quantization
# (int8-qdq: static, calibrated QuantizeLinear/DequantizeLinear pairs; int8-dynamic: int8
# weights, activations quantized at run time). See `quantize_onnx`.
ONNX_VARIANTS = ("float32", "int8-qdq", "int8-dynamic")
VARIANTS = {"tflite": TFLITE_VARIANTS, "onnx": ONNX_VARIANTS}
# Every variant name of any format, in a stable order (what `bench --variants` accepts).
ALL_VARIANTS = tuple(dict.fromkeys((*TFLITE_VARIANTS, *ONNX_VARIANTS)))
# Variants calibrated on representative training images (these need a dataset).
CALIBRATED_VARIANTS = ("int8-full", "int8-qdq")
INT8_IO_TYPES = ("uint8", "int8")
INPUT_NAME = "image"
OUTPUT_NAME = "logits"


@dataclass(frozen=True)
class Tolerance:
    """Parity rule: max |logit difference|, argmax agreement, accuracy difference.

    `accuracy_points` bounds |artifact accuracy - Keras accuracy| in percentage points
    (checked only when the samples have labels); None means not checked, for every limit.
    """

    max_abs_diff: float | None
    argmax_agreement: float | None
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
_HALF = Tolerance(max_abs_diff=None, argmax_agreement=0.99, accuracy_points=0.5)
# Quantized variants without labelled data: argmax agreement with the float model's outputs.
FLOAT_AGREEMENT = Tolerance(max_abs_diff=None, argmax_agreement=0.99, accuracy_points=None)
# Quantized variants with labelled data: parity figures recorded, no parity limit applied.
RECORD_ONLY = Tolerance(max_abs_diff=None, argmax_agreement=None, accuracy_points=None)

QUANTIZED_VARIANTS = ("int8-dynamic", "int8-full", "int8-qdq")
# Percentage points of full-test accuracy a quantized variant may lose against its float32 Keras
# model. Measured drops of working int8 files: <= 0.16 on MNIST (bench/results/main-job) and
# <= 0.57 for a MobileNetV3Small on 2,820 EMNIST images (bench/results/own-model-mnv3s), while
# its compressed full-int8 files, gone wrong, lost 2.2 and 2.9 points.
DEFAULT_MAX_QUANT_DROP = 1.0

# variant -> parity tolerance; the same table for every format (int8-dynamic is TFLite's and
# ONNX's). Quantized variants are held to theirs only without labelled data (`export.gates`).
TOLERANCES: dict[str, Tolerance] = {
    "float32": _FLOAT,
    "float16": _HALF,
    "int8-dynamic": FLOAT_AGREEMENT,
    "int8-full": FLOAT_AGREEMENT,
    "int8-qdq": FLOAT_AGREEMENT,
}


def artifact_id(fmt: str, variant: str) -> str:
    """The manifest id of an artifact, e.g. `tflite-int8-full`, `onnx-float32`."""
    return f"{fmt}-{variant}"


def artifact_file(stem: str, fmt: str, variant: str) -> str:
    """The artifact's file name in the export folder, e.g. `e75-int8-full.tflite`, `e75.onnx`,
    `e75-int8-qdq.onnx` (the float32 ONNX keeps its plain name)."""
    if fmt == "onnx":
        return f"{stem}.onnx" if variant == "float32" else f"{stem}-{variant}.onnx"
    return f"{stem}-{variant}.tflite"
