"""Export one micro-model to TFLite float32 and ONNX float32 and check each against Keras.

The converters are the export step's (`export.to_tflite`, `export.to_onnx`); parity uses its
helpers on seeded random inputs, outputs flattened per sample, with the float32 tolerance
scaled by the largest reference output (a feature map has no argmax to agree on).
"""

from __future__ import annotations

import shutil
import tempfile
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
from lowrank_edge.export.variants import TOLERANCES, Tolerance
from lowrank_edge.fileio import sha256_file
from lowrank_edge.runtime.kit_manifest import KitFile
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


def convert(model, input_shape: tuple[int | None, ...], fmt: str, opset: int, work: Path) -> bytes:
    """The model as TFLite float32 or ONNX float32 bytes; converter chatter is captured."""
    from lowrank_edge.export.to_onnx import convert_onnx
    from lowrank_edge.export.to_tflite import convert_tflite, write_saved_model

    with captured_output():
        if fmt == "onnx":
            return convert_onnx(model, input_shape, opset)
        saved = write_saved_model(model, input_shape, work / "saved_model")
        try:
            return convert_tflite(saved, "float32")
        finally:
            shutil.rmtree(saved, ignore_errors=True)


def export_micro_model(
    model,
    input_shape: tuple[int | None, ...],
    stem: str,
    folder: Path,
    label: str,
    opset: int = 17,
    parity_samples: int = 8,
) -> tuple[dict[str, KitFile], dict[str, dict]]:
    """Write `<stem>.tflite` and `<stem>.onnx` into `folder`; their kit files and parity figures.

    Raises ParityError (naming `label`) when an artifact misses its tolerance.
    """
    x = random_inputs(input_shape, parity_samples)
    reference = keras_logits(model, x).reshape(len(x), -1)
    tolerance = micro_tolerance(reference)
    files, parity = {}, {}
    for fmt, suffix in SUFFIX.items():
        with tempfile.TemporaryDirectory(dir=folder, prefix=".convert-") as work:
            try:
                data = convert(model, input_shape, fmt, opset, Path(work))
            except LowrankEdgeError:
                raise
            except Exception as error:  # converters raise many types; one line naming the entry
                raise LowrankEdgeError(
                    f"kit entry {label}: conversion to {fmt} failed: {type(error).__name__}: "
                    f"{str(error).strip().splitlines()[0] if str(error).strip() else ''}"
                ) from error
        path = folder / f"{stem}{suffix}"
        path.write_bytes(data)
        runner = open_model_bytes(data, path, fmt)
        try:
            candidate = runner_logits(runner, x).reshape(len(x), -1)
        finally:
            runner.close()
        result = compare_logits(reference, candidate, None, tolerance)
        if not result.passed:
            raise ParityError(
                f"kit entry {label}: {fmt} differs from Keras: "
                f"{', '.join(parity_failures(result, tolerance))} ({describe(result)})"
            )
        files[fmt] = KitFile(path.name, sha256_file(path), len(data))
        parity[fmt] = {
            "samples": result.samples,
            "max_abs_diff": result.max_abs_diff,
            "tolerance": tolerance.max_abs_diff,
            "passed": result.passed,
        }
    return files, parity
