"""The runtimes a sweep can time, and how a model is opened on each of them.

LiteRT and ONNX Runtime run in this process through `lowrank_edge.runtime`
(no TensorFlow). Keras runs in a subprocess per thread count: see `keras_backend`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lowrank_edge.benchmark.suite import BenchModel
from lowrank_edge.benchmark.timing.interleave import Opener
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.runtime.kit_manifest import FORMAT_OF_BACKEND
from lowrank_edge.runtime.manifest import ArtifactInfo

BACKENDS = ("litert", "onnxruntime", "keras")
FORMAT_OF = FORMAT_OF_BACKEND  # runtime -> the file format it runs
KERAS_VARIANT = "float32"  # the Keras backend runs the float32 source model
_REQUIRED_MODULES = {
    "litert": ("ai_edge_litert",),
    "onnxruntime": ("onnxruntime",),
    "keras": ("tensorflow", "keras"),
}
_INSTALL_HINT = {
    "litert": "pip install 'lowrank-edge[bench]' (ai-edge-litert)",
    "onnxruntime": "pip install 'lowrank-edge[bench]' (onnxruntime)",
    "keras": "the full install: pip install 'lowrank-edge[train]'",
}


@dataclass(frozen=True)
class BackendOptions:
    """Runtime switches: XNNPACK for LiteRT (on by default), thread spinning for ORT (off)."""

    use_xnnpack: bool = True
    allow_spinning: bool = False


def parse_backends(names: Sequence[str]) -> list[str]:
    """Validate backend names, keeping the given order and dropping repeats."""
    unknown = [name for name in names if name not in BACKENDS]
    if unknown:
        raise LowrankEdgeError(
            f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(BACKENDS)}"
        )
    return list(dict.fromkeys(names))


def _importable(module: str) -> bool:
    """Whether `module` could be imported, checked without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a finder that refuses it, or a broken package
        return False


def missing_runtime(backend: str) -> str | None:
    """Why `backend` cannot run here (a missing package and how to install it), else None."""
    missing = [m for m in _REQUIRED_MODULES[backend] if not _importable(m)]
    if not missing:
        return None
    verb = "is" if len(missing) == 1 else "are"
    return (
        f"the {backend} backend needs {' and '.join(missing)}, which {verb} not installed here; "
        f"use {_INSTALL_HINT[backend]}"
    )


def _find_artifact(model: BenchModel, backend: str, variant: str) -> ArtifactInfo | None:
    """The model's artifact for this backend and variant, or None."""
    fmt = FORMAT_OF[backend]
    artifacts = model.manifest.artifacts if model.manifest is not None else ()
    return next((a for a in artifacts if a.format == fmt and a.variant == variant), None)


def has_artifact(model: BenchModel, backend: str, variant: str) -> bool:
    """True when the model's manifest lists an artifact for this backend and variant."""
    return _find_artifact(model, backend, variant) is not None


def artifact_for(model: BenchModel, backend: str, variant: str) -> ArtifactInfo:
    """The model's artifact for this backend and variant; a clear error listing what it has."""
    assert model.manifest is not None
    found = _find_artifact(model, backend, variant)
    if found is not None:
        return found
    fmt = FORMAT_OF[backend]
    failed = next((a for a in model.failed if a.format == fmt and a.variant == variant), None)
    if failed is not None:
        raise LowrankEdgeError(
            f'{model.manifest.path}: {failed.id} is marked "passed": false (it failed its '
            f"{failed.gate} gate at export: {failed.gate_failure}); not timed"
        )
    have = ", ".join(f"{a.format}/{a.variant}" for a in model.manifest.artifacts) or "none"
    raise LowrankEdgeError(
        f"{model.manifest.path}: no {fmt} artifact with variant {variant} (it has: {have})"
    )


def backend_variants(
    backend: str, requested: Sequence[str], models: Sequence[BenchModel]
) -> list[str]:
    """The requested variants that at least one model has for this backend (keras: float32)."""
    if backend == "keras":
        return [KERAS_VARIANT] if KERAS_VARIANT in requested else []
    fmt = FORMAT_OF[backend]
    present = {
        a.variant
        for m in models
        if m.manifest is not None
        for a in m.manifest.artifacts
        if a.format == fmt
    }
    return [variant for variant in requested if variant in present]


class RunnerSession:
    """A runtime Runner bound to one input batch: `run()` is one `predict`."""

    def __init__(self, runner, x: np.ndarray):
        self.runner, self.x = runner, x

    def run(self) -> object:
        return self.runner.predict(self.x)

    def close(self) -> None:
        self.runner.close()


def runtime_opener(
    model: BenchModel,
    artifact: ArtifactInfo,
    threads: int,
    x: np.ndarray,
    options: BackendOptions,
    profile_prefix: str | None = None,
) -> Opener:
    """An opener for LiteRT/ONNX Runtime; every open checks the SHA-256 of the bytes it loads."""
    from lowrank_edge.runtime.runner import open_artifact

    def open_session() -> RunnerSession:
        runner = open_artifact(
            model.manifest,
            artifact.id,
            threads=threads,
            use_xnnpack=options.use_xnnpack,
            allow_spinning=options.allow_spinning,
            profile_prefix=profile_prefix,
        )
        return RunnerSession(runner, x)

    return open_session
