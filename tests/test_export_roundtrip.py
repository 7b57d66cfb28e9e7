"""Export round trips on a tiny compressed residual model: every format and variant, the
manifest's facts, the saved samples, ONNX I/O names, integer I/O and the CLI."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from harness.export import (
    ALL_ONNX_VARIANTS,
    ALL_TFLITE_VARIANTS,
    PARITY_SAMPLES,
    assert_within_tolerance,
    run_export_roundtrip,
    save_with_sidecar,
    shared_export,
)

from lowrank_edge.cli import main
from lowrank_edge.compress.cost import model_cost
from lowrank_edge.export.gates import parity_tolerance
from lowrank_edge.fileio import sha256_file
from lowrank_edge.runtime import load_manifest, open_artifact


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return shared_export(tmp_path_factory)


def test_every_format_and_variant_passes_parity(shared):
    manifest = shared.roundtrip.manifest
    expected = [f"tflite-{v}" for v in ALL_TFLITE_VARIANTS] + [
        f"onnx-{v}" for v in ALL_ONNX_VARIANTS
    ]
    assert [a.id for a in manifest.artifacts] == expected
    for artifact in manifest.artifacts:
        parity = artifact.parity
        assert parity.passed and parity.samples == PARITY_SAMPLES
        assert parity.tolerance == parity_tolerance(artifact.variant, labelled=True).to_dict()
        assert artifact.bytes == manifest.artifact_path(artifact).stat().st_size
        if artifact.variant == "float32":  # identical argmax: identical accuracy
            assert parity.max_abs_diff <= 1e-4 and parity.accuracy == parity.keras_accuracy


def test_exported_model_contains_factor_pairs(shared):
    names = [layer.name for layer in shared.model.layers]
    assert any(name.endswith("_lr_a") for name in names) and "logits_lr_b" in names
    assert shared.roundtrip.manifest.model.compression == json.loads(json.dumps(shared.compression))


def test_manifest_describes_the_model(shared):
    model_info = shared.roundtrip.manifest.model
    cost = model_cost(shared.model)
    assert (model_info.name, model_info.dataset, model_info.num_classes) == ("model", "patterns", 5)
    assert model_info.labels == shared.dataset.labels
    assert model_info.input.shape == (None, 28, 28, 1) and model_info.input.range == (0.0, 1.0)
    assert model_info.output.shape == (None, 5)
    assert (model_info.params, model_info.macs, model_info.flops) == (
        cost.params,
        cost.macs,
        cost.flops,
    )
    source = shared.roundtrip.out_dir / model_info.source.path
    assert source.resolve() == shared.roundtrip.model_path.resolve()
    assert model_info.source.sha256 == sha256_file(source)


def test_samples_are_real_labelled_test_images(shared):
    manifest = shared.roundtrip.manifest
    x, y = manifest.load_samples()
    assert len(x) == manifest.samples.count == len(shared.dataset.x_test)
    with np.load(manifest.folder / manifest.samples.file, allow_pickle=False) as raw:
        assert raw["x"].dtype == np.uint8  # lossless for images on the uint8 grid
    label_of = {
        row.tobytes(): label
        for row, label in zip(shared.dataset.x_test, shared.dataset.y_test, strict=True)
    }
    assert [label_of[row.tobytes()] for row in x] == y.tolist()


@pytest.mark.parametrize("variant", ALL_ONNX_VARIANTS)
def test_onnx_has_stable_names_and_a_dynamic_batch(shared, variant):
    manifest = shared.roundtrip.manifest
    graph = onnx.load(manifest.artifact_path(f"onnx-{variant}")).graph
    for value, name in ((graph.input[0], "image"), (graph.output[0], "logits")):
        assert value.name == name
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch"


@pytest.mark.parametrize(
    "artifact_id", ["tflite-float32", "tflite-int8-full", "onnx-float32", "onnx-int8-qdq"]
)
def test_runner_gives_the_same_logits_for_any_batch_size(shared, artifact_id):
    x = shared.dataset.x_test[:41]
    with open_artifact(shared.roundtrip.manifest, artifact_id) as runner:
        whole = runner.predict(x)
        pieces = np.concatenate(
            [runner.predict(x[:1]), runner.predict(x[1:8]), runner.predict(x[8:])]
        )
    assert whole.dtype == np.float32 and whole.shape == (41, 5)
    np.testing.assert_allclose(pieces, whole, rtol=0, atol=1e-5)


@pytest.mark.parametrize("int8_io, dtype", [(True, "uint8"), ("int8", "int8")])
def test_int8_full_with_integer_io(shared, tmp_path, int8_io, dtype):
    roundtrip = run_export_roundtrip(
        shared.model, tmp_path, ("tflite",), ("int8-full",), shared.dataset, int8_io=int8_io
    )
    artifact = roundtrip.manifest.artifact("tflite-int8-full")
    for io in (artifact.input, artifact.output):
        assert io.dtype == dtype and io.scale > 0 and io.zero_point is not None
    # The runner takes float images and returns float logits: check against Keras directly.
    x = shared.dataset.x_test
    with open_artifact(roundtrip.manifest, artifact.id) as runner:
        assert_within_tolerance("int8-full", np.asarray(shared.model(x)), runner.predict(x), dtype)


def test_cli_export_is_quiet_and_refuses_to_replace(shared, tmp_path, monkeypatch, capfd):
    model_path = save_with_sidecar(shared.model, tmp_path / "e75.keras", None)
    monkeypatch.setattr("lowrank_edge.data.load_dataset", lambda *args, **kwargs: shared.dataset)
    args = ["export", str(model_path), "--format", "tflite", "--variant", "int8-full"]
    args += ["--dataset", "mnist", "--samples", "32"]
    capfd.readouterr()
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "tflite-int8-full: e75-int8-full.tflite" in result.output and "-> ok" in result.output
    native = capfd.readouterr()
    assert "fully_quantize" not in native.out + native.err  # converter chatter was captured
    manifest = load_manifest(tmp_path / "e75")  # default --out-dir: beside the model
    assert [a.id for a in manifest.artifacts] == ["tflite-int8-full"]

    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1
    existing = tmp_path / "e75" / "manifest.json"
    assert again.output.strip().splitlines() == [
        f"error: {existing} already exists; pass --overwrite to replace it"
    ]
