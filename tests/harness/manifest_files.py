"""A small, valid export folder written by hand (no TensorFlow): manifest, two files, samples.

The artifact files hold placeholder bytes (the manifest reader checks names and checksums,
not model contents), so tests of the manifest reader run in milliseconds.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from lowrank_edge.runtime.manifest import (
    MANIFEST_NAME,
    ArtifactInfo,
    InputInfo,
    Manifest,
    ModelInfo,
    OutputInfo,
    Parity,
    Provenance,
    SamplesInfo,
    SourceInfo,
    TensorIO,
)

ARTIFACT_BYTES = {"model.tflite": b"TFL3 placeholder", "model.onnx": b"ONNX placeholder"}
SAMPLES_FILE = "samples.npz"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _artifact(artifact_id: str, fmt: str, file: str, data: bytes) -> ArtifactInfo:
    return ArtifactInfo(
        id=artifact_id,
        format=fmt,
        variant="float32",
        file=file,
        bytes=len(data),
        sha256=_sha256(data),
        input=TensorIO("input", "float32"),
        output=TensorIO("logits", "int8", scale=0.05, zero_point=-3),
        parity=Parity(
            samples=3,
            max_abs_diff=1e-6,
            mean_abs_diff=1e-7,
            argmax_agreement=1.0,
            accuracy=2 / 3,
            keras_accuracy=None,
            passed=True,
            tolerance={"max_abs_diff": 1e-4, "argmax_agreement": 0.99},
        ),
    )


def make_manifest(samples_sha256: str | None = None) -> Manifest:
    """A schema-1 manifest describing `ARTIFACT_BYTES` (and a samples file if a hash is given)."""
    return Manifest(
        model=ModelInfo(
            name="tiny",
            dataset="patterns",
            num_classes=3,
            labels=("a", "b", "c"),
            input=InputInfo("input", (None, 28, 28, 1)),
            output=OutputInfo("logits", (None, 3)),
            params=1234,
            trainable_params=1200,
            macs=5678,
            flops=11356,
            source=SourceInfo("../tiny.keras", _sha256(b"keras")),
            compression={"layers": [], "totals": {}},
        ),
        samples=None
        if samples_sha256 is None
        else SamplesInfo(file=SAMPLES_FILE, sha256=samples_sha256, count=3),
        artifacts=(
            _artifact("tflite-float32", "tflite", "model.tflite", ARTIFACT_BYTES["model.tflite"]),
            _artifact("onnx-float32", "onnx", "model.onnx", ARTIFACT_BYTES["model.onnx"]),
        ),
        provenance=Provenance(
            created="2025-01-01T00:00:00+00:00",
            lowrank_edge="0.1",
            tensorflow=None,
            keras=None,
            tf2onnx=None,
            onnx=None,
            onnxruntime="1.0",
            ai_edge_litert=None,
            python="3.11",
        ),
    )


def write_manifest_folder(folder: Path) -> Path:
    """Write the artifacts, a 3-image samples file and `manifest.json`; return the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in ARTIFACT_BYTES.items():
        (folder / name).write_bytes(data)
    x = np.arange(3 * 28 * 28, dtype=np.int64).reshape(3, 28, 28, 1).astype(np.uint8)
    with open(folder / SAMPLES_FILE, "wb") as handle:
        np.savez(handle, x=x, y=np.array([0, 1, 2], dtype=np.int64))
    manifest = make_manifest(_sha256((folder / SAMPLES_FILE).read_bytes()))
    path = folder / MANIFEST_NAME
    path.write_text(json.dumps(manifest.to_dict(), indent=2))
    return path
