"""ONNX float32 -> int8 with ONNX Runtime's own tools (`onnxruntime.quantization`).

Both variants start from the exported float32 model, prepared by `quant_pre_process` (ONNX
shape inference and ORT's basic graph optimisations; the symbolic shape inference, which needs
sympy and serves transformer models, is skipped). Input `image` and output `logits` stay float32.

* `int8-qdq`: `quantize_static` in QDQ format, MinMax-calibrated on the representative training
  images the TFLite int8-full variant uses; uint8 activations, int8 weights per output channel
  in a 7-bit range (`reduce_range`).
* `int8-dynamic`: `quantize_dynamic` of Conv, MatMul and Gemm with uint8 weights; activations
  are quantized at run time, per call.

Why these settings (reference MNIST model m0.33, all 10,000 test images, onnxruntime 1.32 on an
AVX2 CPU without VNNI; float32 99.01%): per-channel int8 weights in the full 8-bit range fell to
52.3% accuracy, 99.02% with `reduce_range` - uint8 x int8 products saturate the 16-bit
intermediate sums of x86 kernels without VNNI, and onnxruntime's own `quantize_static` guidance
asks for `reduce_range` there (per-tensor: 98.87%, with `reduce_range` 98.93%). Dynamic
quantization gave 99.00% with uint8 weights and 98.95% with int8; ConvInteger with int8 weights
has a CPU kernel only in recent onnxruntime releases (microsoft/onnxruntime PR 26585, November
2025): older ones, which the bench extra still allows, refuse to load such a model, while
uint8 x uint8 ConvInteger runs on all of them.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.export.variants import INPUT_NAME

QUANTIZED_ONNX_VARIANTS = ("int8-qdq", "int8-dynamic")
CALIBRATION_BATCH = 32  # MinMax ranges are the same for any batching; batches are faster
DYNAMIC_OP_TYPES = ("Conv", "MatMul", "Gemm")


def quantize_onnx(
    float_model: bytes,
    variant: str,
    workdir: Path,
    representative: np.ndarray | None = None,
) -> bytes:
    """The serialised int8 `variant` of the float32 ONNX model `float_model`.

    `representative` (float32 training images) calibrates `int8-qdq`; `workdir` holds the
    intermediate files (created if needed, left for the caller to remove).
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if variant not in QUANTIZED_ONNX_VARIANTS:
        raise LowrankEdgeError(
            f"unknown quantized ONNX variant {variant!r}; "
            f"choose from {', '.join(QUANTIZED_ONNX_VARIANTS)}"
        )
    if variant == "int8-qdq" and (representative is None or len(representative) == 0):
        raise LowrankEdgeError("the int8-qdq variant needs representative images (a dataset)")
    workdir.mkdir(parents=True, exist_ok=True)
    source, prepared = workdir / "float32.onnx", workdir / "prepared.onnx"
    output = workdir / f"{variant}.onnx"
    source.write_bytes(float_model)
    with _root_logging_to_stderr():
        quant_pre_process(source, prepared, skip_symbolic_shape=True)
        if variant == "int8-qdq":
            quantize_static(
                prepared,
                output,
                calibration_reader(representative),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
            )
        else:
            quantize_dynamic(
                prepared,
                output,
                op_types_to_quantize=list(DYNAMIC_OP_TYPES),
                weight_type=QuantType.QUInt8,
            )
    onnx.checker.check_model(onnx.load(output))
    return output.read_bytes()


def calibration_reader(images: np.ndarray, batch: int = CALIBRATION_BATCH):
    """A `CalibrationDataReader` feeding `images` (float32) as the `image` input in batches."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Images(CalibrationDataReader):
        def __init__(self) -> None:
            self._starts = iter(range(0, len(images), batch))

        def get_next(self) -> dict[str, np.ndarray] | None:
            start = next(self._starts, None)
            if start is None:
                return None
            return {INPUT_NAME: np.asarray(images[start : start + batch], dtype=np.float32)}

    return _Images()


@contextlib.contextmanager
def _root_logging_to_stderr() -> Iterator[None]:
    """Give the root logger a handler on the current `sys.stderr` for the block.

    onnxruntime.quantization logs through the root logger; with no handler there, the first
    warning would install one bound to whatever `sys.stderr` is at that moment (the exporter's
    output capture) for the rest of the process. Here its messages join that capture instead.
    """
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
