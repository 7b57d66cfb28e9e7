"""Issue 10: remedies ONNX Runtime's quantizer offers when int8 QDQ costs a low-rank model accuracy.

For each export folder's float32 ONNX model, quantizes it as our `int8-qdq` variant does (QDQ,
per-channel int8 weights in the 7-bit range, uint8 activations) while changing one thing:
the calibration method (MinMax, Percentile, Entropy), the number of calibration images, or
keeping every factor pair's bottleneck tensor float (`nodes_to_exclude` on the second conv of
each pair, so the rank-r tensor between them is never quantized). Each result is run on the
whole MNIST test split in ONNX Runtime; accuracy and file size are printed and saved.

Usage: python bench/experiments/int8-remedies/int8_remedies_ort.py EXPORT_DIR... \
    --out bench/results/int8-remedies/ort.md
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from lowrank_edge.data import load_dataset
from lowrank_edge.export.facts import pick_representative
from lowrank_edge.export.quantize_onnx import calibration_reader
from lowrank_edge.fileio import write_text_atomic
from lowrank_edge.runtime import load_manifest

SETTINGS = (
    # (label, calibration method, images, keep bottlenecks float)
    ("MinMax, 200 images (our int8-qdq)", CalibrationMethod.MinMax, 200, False),
    ("MinMax, 2000 images", CalibrationMethod.MinMax, 2000, False),
    ("Percentile 99.999, 200 images", CalibrationMethod.Percentile, 200, False),
    ("Entropy, 200 images", CalibrationMethod.Entropy, 200, False),
    ("MinMax, 200 images, bottlenecks float", CalibrationMethod.MinMax, 200, True),
)


def bottleneck_consumers(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes that read a factor pair's rank-r tensor (the output of a `_lr_a` op)."""
    firsts = {out for node in model.graph.node if "_lr_a" in node.name for out in node.output}
    return [node.name for node in model.graph.node if firsts & set(node.input)]


def quantize(source: Path, images: np.ndarray, method, keep_float: bool, work: Path) -> Path:
    """Our int8-qdq settings, with the calibration method and exclusions given."""
    prepared, output = work / "prepared.onnx", work / "int8.onnx"
    quant_pre_process(source, prepared, skip_symbolic_shape=True)
    excluded = bottleneck_consumers(onnx.load(prepared)) if keep_float else []
    quantize_static(
        prepared,
        output,
        calibration_reader(images, batch=8),  # histogram calibrators need equal batches
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        reduce_range=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=method,
        nodes_to_exclude=excluded,
        extra_options={"CalibPercentile": 99.999},
    )
    return output


def accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    logits = np.concatenate(
        [session.run(None, {name: x[i : i + 500]})[0] for i in range(0, len(x), 500)]
    )
    return float(np.mean(logits.argmax(axis=1) == y))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    data = load_dataset("mnist", None, seed=0)
    x, y = data.x_test.astype(np.float32), data.y_test
    rows = []
    for folder in args.folders:
        manifest = load_manifest(folder)
        source = manifest.artifact_path("onnx-float32")
        reference = accuracy(source, x, y)
        for label, method, count, keep_float in SETTINGS:
            with tempfile.TemporaryDirectory() as work:
                images = pick_representative(data, count)
                path = quantize(source, images, method, keep_float, Path(work))
                value, size = accuracy(path, x, y), path.stat().st_size
            row = [manifest.model.name, label, f"{reference:.2%}", f"{value:.2%}",
                   f"{(reference - value) * 100:+.2f}", f"{size:,}"]  # fmt: skip
            print(" | ".join(row), flush=True)
            rows.append(row)
    header = ["Model", "Setting", "float32", "int8 QDQ", "Drop (pp)", "Bytes"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    write_text_atomic(args.out, "\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
