"""Export Keras models to TFLite (float32, float16, int8-dynamic, int8-full) and ONNX (float32,
int8-qdq, int8-dynamic).

`export_model(...)` converts, runs every artifact in its own runtime, records its parity with
Keras and its accuracy on the whole test split, judges it by the gate of its kind of variant
(`gates`: a failed one is marked `"passed": false`, or left out with `strict`) and writes
`manifest.json` (read back by `lowrank_edge.runtime`). Imports TensorFlow when converting;
`strip_tflite_names` (the `--strip-names` option) is TF-free.
"""

from lowrank_edge.export.exporter import PlannedArtifact, export_model, plan_artifacts
from lowrank_edge.export.parity import ParityError, compare_logits, parity_failures
from lowrank_edge.export.strip import strip_tflite_names
from lowrank_edge.export.variants import (
    ALL_VARIANTS,
    FORMATS,
    ONNX_VARIANTS,
    TFLITE_VARIANTS,
    TOLERANCES,
    Tolerance,
    artifact_file,
    artifact_id,
)

__all__ = [
    "ALL_VARIANTS",
    "FORMATS",
    "ONNX_VARIANTS",
    "TFLITE_VARIANTS",
    "TOLERANCES",
    "ParityError",
    "PlannedArtifact",
    "Tolerance",
    "artifact_file",
    "artifact_id",
    "compare_logits",
    "export_model",
    "parity_failures",
    "plan_artifacts",
    "strip_tflite_names",
]
