"""Export round trips (keras-hub `run_litert_export_test` style), shared by every export test.

- (the tiny in-memory `Dataset` comes from `harness.data.make_pattern_dataset`)
  (stripes of different orientation on faint noise), pixel values on the uint8 grid.
- `build_factorised_model(dataset)`: the tiny mini-ResNet, trained briefly, compressed with
  `lowrank_edge.compress.compress_model` (every Conv2D and Dense split into a factor pair);
  returns the model and its compression facts (what `compress` writes as a sidecar).
- `run_export_roundtrip(model, tmp_path, formats, variants, dataset, ...)`: save the model as
  `.keras` (+ sidecar), export, reload the manifest, verify every artifact's checksum, run it
  through the runtime API and compare with Keras using the export tolerance table.
- `shared_export(tmp_path_factory)`: one full export (every TFLite and ONNX variant) per test
  session, reused read-only by several test modules (exports take seconds each).
- `block_imports_code(...)`: source of a `sys.meta_path` finder that refuses TF/Keras/tf2onnx.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from harness.data import make_pattern_dataset
from lowrank_edge.data.dataset import Dataset
from lowrank_edge.export import TOLERANCES, export_model
from lowrank_edge.model.resnet import ResNetConfig, build_mini_resnet
from lowrank_edge.model.saving import save_model
from lowrank_edge.model.train import FitConfig, fit
from lowrank_edge.runtime import Manifest, load_manifest, open_artifact, verify_artifact

TINY_CONFIG = ResNetConfig(num_classes=5, widths=(4, 8), blocks_per_stage=1, head_units=8)
PARITY_SAMPLES = 64
ALL_TFLITE_VARIANTS = ("float32", "float16", "int8-dynamic", "int8-full")
ALL_ONNX_VARIANTS = ("float32", "int8-qdq", "int8-dynamic")
BLOCKED_MODULES = ("tensorflow", "keras", "tf2onnx")


def build_factorised_model(dataset: Dataset, seed: int = 0) -> tuple[keras.Model, dict]:
    """Tiny mini-ResNet, trained, then compressed into Conv2D/Dense factor pairs and fine-tuned."""
    from lowrank_edge.compress import FractionPolicy, compress_model

    keras.utils.set_random_seed(seed)
    base = build_mini_resnet(TINY_CONFIG)
    fit(base, dataset, FitConfig(epochs=4, batch_size=32, learning_rate=5e-3, verbose=0))
    result = compress_model(base, FractionPolicy(0.75), break_even=False)
    return result.model, result.to_dict()


@dataclass(frozen=True)
class ExportRoundtrip:
    """What a round trip produced: the model file, the export folder and its manifest."""

    model_path: Path
    out_dir: Path
    manifest: Manifest
    log: tuple[str, ...]


def save_with_sidecar(model: keras.Model, path: Path, compression: dict | None) -> Path:
    """Save `model` as `.keras` and, if given, its `<stem>.compression.json` beside it."""
    save_model(model, path, overwrite=True)
    if compression is not None:
        path.with_name(f"{path.stem}.compression.json").write_text(json.dumps(compression))
    return path


def run_export_roundtrip(
    model: keras.Model,
    tmp_path: Path,
    formats: tuple[str, ...],
    variants: tuple[str, ...],
    dataset: Dataset,
    *,
    compression: dict | None = None,
    parity_samples: int = PARITY_SAMPLES,
    **export_options,
) -> ExportRoundtrip:
    """Export `model`, then check the folder the way a device would use it (see module doc)."""
    model_path = save_with_sidecar(model, tmp_path / "model.keras", compression)
    out_dir = tmp_path / "export"
    log: list[str] = []
    manifest = export_model(
        model_path,
        out_dir,
        formats=formats,
        tflite_variants=variants,
        dataset=dataset,
        parity_samples=parity_samples,
        log=log.append,
        **export_options,
    )
    reloaded = load_manifest(out_dir)
    assert reloaded == manifest, "manifest on disk differs from the one export_model returned"
    x = dataset.x_test[:parity_samples]
    reference = np.asarray(model(x, training=False))
    for artifact in reloaded.artifacts:
        verify_artifact(reloaded, artifact)
        assert artifact.parity is not None and artifact.parity.passed, artifact
        with open_artifact(reloaded, artifact.id) as runner:
            assert_within_tolerance(artifact.variant, reference, runner.predict(x), artifact.id)
    return ExportRoundtrip(model_path, out_dir, reloaded, tuple(log))


def assert_within_tolerance(
    variant: str, reference: np.ndarray, actual: np.ndarray, what: str
) -> None:
    """Check logits against Keras with the export tolerance of `variant` (max |d| or argmax)."""
    tolerance = TOLERANCES[variant]
    assert actual.shape == reference.shape, f"{what}: {actual.shape} vs {reference.shape}"
    assert np.isfinite(actual).all(), f"{what}: non-finite logits"
    if tolerance.max_abs_diff is not None:
        np.testing.assert_allclose(actual, reference, rtol=0, atol=tolerance.max_abs_diff)
    agreement = np.mean(actual.argmax(axis=1) == reference.argmax(axis=1))
    assert agreement >= tolerance.argmax_agreement, f"{what}: argmax agreement {agreement:.2%}"


@dataclass(frozen=True)
class SharedExport:
    """One exported folder (every variant of both formats) plus the model and dataset that made
    it."""

    roundtrip: ExportRoundtrip
    model: keras.Model
    dataset: Dataset
    compression: dict


_SHARED: dict[str, SharedExport] = {}


def shared_export(tmp_path_factory) -> SharedExport:
    """The session's full export (every TFLite and ONNX variant); treat its folder as read-only."""
    key = str(tmp_path_factory.getbasetemp())
    if key not in _SHARED:
        dataset = make_pattern_dataset()
        model, compression = build_factorised_model(dataset)
        roundtrip = run_export_roundtrip(
            model,
            tmp_path_factory.mktemp("shared-export"),
            ("tflite", "onnx"),
            ALL_TFLITE_VARIANTS,
            dataset,
            compression=compression,
            onnx_variants=ALL_ONNX_VARIANTS,
        )
        _SHARED[key] = SharedExport(roundtrip, model, dataset, compression)
    return _SHARED[key]


def copy_export(shared: SharedExport, tmp_path: Path) -> Path:
    """A private copy of the shared export folder, for tests that damage files."""
    return Path(shutil.copytree(shared.roundtrip.out_dir, tmp_path / "export"))


def block_imports_code(blocked: tuple[str, ...] = BLOCKED_MODULES) -> str:
    """Python source installing a meta-path finder that raises ImportError for `blocked`."""
    return f"""
import sys

class _Blocker:
    blocked = {blocked!r}

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.blocked:
            raise ImportError(f"blocked in this test: {{name}}")
        return None

sys.meta_path.insert(0, _Blocker())
"""


REPO = Path(__file__).resolve().parents[2]


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter from `cwd`, importing this checkout's package."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
