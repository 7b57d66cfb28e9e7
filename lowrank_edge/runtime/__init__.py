"""Run exported artifacts without TensorFlow: the manifest reader and the LiteRT/ONNX runners.

Imports only numpy, the stdlib and (when a runner is opened) the runtime packages, so it works
on a device that has `pip install 'lowrank-edge[bench]'` and nothing else.
"""

from lowrank_edge.runtime.manifest import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    AccuracyInfo,
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
    load_manifest,
    read_artifact,
    verify_artifact,
)
from lowrank_edge.runtime.runner import Runner, open_artifact, open_litert, open_onnxruntime

__all__ = [
    "MANIFEST_NAME",
    "SCHEMA_VERSION",
    "AccuracyInfo",
    "ArtifactInfo",
    "InputInfo",
    "Manifest",
    "ModelInfo",
    "OutputInfo",
    "Parity",
    "Provenance",
    "Runner",
    "SamplesInfo",
    "SourceInfo",
    "TensorIO",
    "load_manifest",
    "open_artifact",
    "open_litert",
    "open_onnxruntime",
    "read_artifact",
    "verify_artifact",
]
