"""Export one micro-model to TFLite and ONNX (float32, and optionally every other precision the
format has) and check the float32 files against Keras.

The converters are the export step's (`export.to_tflite`, `export.to_onnx`,
`export.quantize_onnx`); parity uses its helpers on seeded random inputs, outputs flattened per
sample, with the float32 tolerance scaled by the largest reference output (a feature map has no
argmax to agree on). Quantised files calibrate on seeded random inputs: latency does not depend
on the values, and they are timed, never used for predictions.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.export.parity import (
    ParityError,
    compare_logits,
    describe,
    keras_logits,
    parity_failures,
    runner_logits,
)
from lowrank_edge.export.variants import TOLERANCES, VARIANTS, Tolerance
from lowrank_edge.fileio import sha256_file
from lowrank_edge.runtime.kit_manifest import FLOAT32, KitFile, file_key
from lowrank_edge.runtime.quiet import captured_output
from lowrank_edge.runtime.runner import open_model_bytes

SUFFIX = {"tflite": ".tflite", "onnx": ".onnx"}


def random_inputs(input_shape: tuple[int | None, ...], count: int, seed: int = 0) -> np.ndarray:
    """`count` seeded standard-normal float32 samples of `input_shape` (batch axis first)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((count, *input_shape[1:])).astype(np.float32)


def micro_tolerance(reference: np.ndarray) -> Tolerance:
    """The float32 tolerance, its max |diff| scaled by max(1, max |reference|); no argmax rule."""
    scale = max(1.0, float(np.max(np.abs(reference)))) if reference.size else 1.0
    base = TOLERANCES["float32"]
    assert base.max_abs_diff is not None
    return replace(base, max_abs_diff=base.max_abs_diff * scale, argmax_agreement=0.0)


CALIBRATION_SAMPLES = 16  # seeded inputs calibrate int8-full/QDQ: latency ignores the values


def convert(
    model,
    input_shape: tuple[int | None, ...],
    fmt: str,
    opset: int,
    work: Path,
    precisions: Sequence[str] = (FLOAT32,),
) -> dict[str, bytes]:
    """The model as TFLite or ONNX bytes in each of `precisions` (export variants of `fmt`), in
    that order; int8-full/QDQ calibrate on seeded random inputs. ONNX's quantised files are
    made from its float32 file; TFLite converts each precision from one SavedModel. Converter
    chatter is captured."""
    from lowrank_edge.export.quantize_onnx import quantize_onnx
    from lowrank_edge.export.to_onnx import convert_onnx
    from lowrank_edge.export.to_tflite import convert_tflite, write_saved_model

    unknown = [p for p in precisions if p not in VARIANTS[fmt]]
    if unknown:
        raise LowrankEdgeError(
            f"{fmt} has no precision {', '.join(unknown)}; choose from {', '.join(VARIANTS[fmt])}"
        )
    wanted = list(dict.fromkeys(precisions))
    calibration = random_inputs(input_shape, CALIBRATION_SAMPLES, seed=1)
    out: dict[str, bytes] = {}
    with captured_output():
        if fmt == "onnx":
            float_model = convert_onnx(model, input_shape, opset)
            for precision in wanted:
                out[precision] = (
                    float_model
                    if precision == FLOAT32
                    else quantize_onnx(float_model, precision, work / precision, calibration)
                )
            return out
        saved = write_saved_model(model, input_shape, work / "saved_model")
        try:
            for precision in wanted:
                out[precision] = convert_tflite(saved, precision, calibration)
        finally:
            shutil.rmtree(saved, ignore_errors=True)
    return out


def _file_name(stem: str, fmt: str, precision: str) -> str:
    tail = "" if precision == FLOAT32 else f"-{precision}"
    return f"{stem}{tail}{SUFFIX[fmt]}"


def export_micro_model(
    model,
    input_shape: tuple[int | None, ...],
    stem: str,
    folder: Path,
    label: str,
    opset: int = 17,
    parity_samples: int = 8,
    precisions: Sequence[str] = (FLOAT32,),
) -> tuple[dict[str, KitFile], dict[str, dict]]:
    """Write `<stem>.tflite` and `<stem>.onnx` (float32) into `folder`, and `<stem>-<precision>`
    files for every other precision of `precisions` a format has; their kit files (keyed by
    `file_key`) and parity figures.

    Float32 files must match Keras within the float32 tolerance, else ParityError (naming
    `label`); a quantised file is run once and its difference recorded, not gated: it exists
    to be timed.
    """
    x = random_inputs(input_shape, parity_samples)
    reference = keras_logits(model, x).reshape(len(x), -1)
    tolerance = micro_tolerance(reference)
    files, parity = {}, {}
    for fmt in SUFFIX:
        own = [FLOAT32, *(p for p in precisions if p in VARIANTS[fmt])]  # float32: parity
        with tempfile.TemporaryDirectory(dir=folder, prefix=".convert-") as work:
            try:
                converted = convert(model, input_shape, fmt, opset, Path(work), own)
            except LowrankEdgeError:
                raise
            except Exception as error:  # converters raise many types; one line naming the entry
                raise LowrankEdgeError(
                    f"kit entry {label}: conversion to {fmt} failed: {type(error).__name__}: "
                    f"{str(error).strip().splitlines()[0] if str(error).strip() else ''}"
                ) from error
        for precision, data in converted.items():
            key = file_key(fmt, precision)
            path = folder / _file_name(stem, fmt, precision)
            path.write_bytes(data)
            runner = open_model_bytes(data, path, fmt)
            try:
                candidate = runner_logits(runner, x).reshape(len(x), -1)
            finally:
                runner.close()
            result = compare_logits(reference, candidate, None, tolerance)
            if precision == FLOAT32 and not result.passed:
                raise ParityError(
                    f"kit entry {label}: {fmt} differs from Keras: "
                    f"{', '.join(parity_failures(result, tolerance))} ({describe(result)})"
                )
            files[key] = KitFile(path.name, sha256_file(path), len(data))
            parity[key] = {
                "samples": result.samples,
                "max_abs_diff": result.max_abs_diff,
                "tolerance": tolerance.max_abs_diff if precision == FLOAT32 else None,
                "passed": result.passed if precision == FLOAT32 else None,
            }
    return files, parity
