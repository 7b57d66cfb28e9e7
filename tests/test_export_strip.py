"""`export --strip-names`: TFLite artifacts without tensor names, subgraph name, description and
signature defs are smaller, still pass parity, run in the TF-free runtime and say so in the
manifest."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from harness.export import (
    block_imports_code,
    run_export_roundtrip,
    run_python,
    save_with_sidecar,
    shared_export,
)

from lowrank_edge.cli import main
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.export import export_model
from lowrank_edge.export.strip import (
    strip_tflite_names,
    tflite_signature_count,
    tflite_tensor_names,
)
from lowrank_edge.runtime import load_manifest, open_artifact
from lowrank_edge.runtime.runner import open_model_bytes


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return shared_export(tmp_path_factory)


@pytest.fixture(scope="module")
def stripped(shared, tmp_path_factory):
    """The shared model exported again with --strip-names (two TFLite variants and ONNX)."""
    return run_export_roundtrip(
        shared.model,
        tmp_path_factory.mktemp("stripped"),
        ("tflite", "onnx"),
        ("float32", "int8-full"),
        shared.dataset,
        strip_names=True,
    )


@pytest.mark.parametrize("artifact_id", ["tflite-float32", "tflite-int8-full"])
def test_stripping_keeps_the_model_and_drops_its_names(shared, artifact_id):
    manifest = shared.roundtrip.manifest
    content = manifest.artifact_path(artifact_id).read_bytes()
    assert any(tflite_tensor_names(content)) and tflite_signature_count(content) == 1

    small = strip_tflite_names(content)
    assert len(small) < len(content)
    assert not any(tflite_tensor_names(small)) and tflite_signature_count(small) == 0
    assert len(tflite_tensor_names(small)) == len(tflite_tensor_names(content))
    assert strip_tflite_names(small) == small  # nothing left to strip
    x = shared.dataset.x_test
    with (
        open_model_bytes(content, "named.tflite", "tflite") as named,
        open_model_bytes(small, "stripped.tflite", "tflite") as bare,
    ):
        assert bare.input_io.name == bare.output_io.name == ""
        assert (bare.input_io.dtype, bare.output_io.dtype) == (
            named.input_io.dtype,
            named.output_io.dtype,
        )
        np.testing.assert_array_equal(bare.predict(x), named.predict(x))


def test_stripping_refuses_what_is_not_a_tflite_model():
    with pytest.raises(LowrankEdgeError, match="not a readable TFLite flatbuffer"):
        strip_tflite_names(b"not a model at all")


def test_export_strips_the_tflite_artifacts_and_records_it(shared, stripped):
    manifest = stripped.manifest  # the round trip checked parity and ran every artifact
    named = shared.roundtrip.manifest
    assert [a.id for a in manifest.artifacts] == [
        "tflite-float32",
        "tflite-int8-full",
        "onnx-float32",
    ]
    for artifact in manifest.artifacts:
        content = manifest.artifact_path(artifact).read_bytes()
        assert artifact.parity.passed and artifact.test_accuracy is not None
        if artifact.format == "onnx":  # ONNX is left as it is
            assert not artifact.names_stripped
            assert artifact.input == named.artifact(artifact.id).input
            continue
        assert artifact.names_stripped and artifact.bytes == len(content)
        assert artifact.bytes < named.artifact(artifact.id).bytes
        assert not any(tflite_tensor_names(content)) and tflite_signature_count(content) == 0
        assert artifact.input.name == artifact.output.name == ""
    assert not any(a.names_stripped for a in named.artifacts)
    assert any("bytes (names stripped)" in line for line in stripped.log)


def test_stripped_artifacts_run_without_tensorflow(shared, stripped, tmp_path):
    result = tmp_path / "logits.npz"
    code = block_imports_code() + (
        "import numpy as np\n"
        "from lowrank_edge.runtime import load_manifest, open_artifact\n"
        f"manifest = load_manifest({str(stripped.out_dir)!r})\n"
        "x, _ = manifest.load_samples()\n"
        "logits = {}\n"
        "for artifact in manifest.artifacts:\n"
        "    if artifact.names_stripped:\n"
        "        with open_artifact(manifest, artifact.id, threads=1) as runner:\n"
        "            logits[artifact.id] = runner.predict(x)\n"
        f"np.savez({str(result)!r}, x=x, **logits)\n"
    )
    done = run_python(code, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(result) as saved:
        assert sorted(saved.files) == ["tflite-float32", "tflite-int8-full", "x"]
        x = saved["x"]
        for artifact_id in ("tflite-float32", "tflite-int8-full"):
            with open_artifact(shared.roundtrip.manifest, artifact_id) as named:
                np.testing.assert_array_equal(saved[artifact_id], named.predict(x))


def test_strip_names_needs_a_tflite_artifact(shared, tmp_path):
    with pytest.raises(LowrankEdgeError, match=r"applies to TFLite artifacts only"):
        export_model(
            tmp_path / "model.keras", tmp_path / "out", formats=("onnx",), strip_names=True
        )
    assert not (tmp_path / "out").exists()


def test_cli_strip_names(shared, tmp_path, monkeypatch):
    model_path = save_with_sidecar(shared.model, tmp_path / "e75.keras", None)
    monkeypatch.setattr("lowrank_edge.data.load_dataset", lambda *args, **kwargs: shared.dataset)
    args = ["export", str(model_path), "--format", "tflite", "--variant", "float32"]
    args += ["--dataset", "mnist", "--samples", "32", "--strip-names"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "(names stripped)" in result.output and "-> ok" in result.output
    (artifact,) = load_manifest(tmp_path / "e75").artifacts
    assert artifact.names_stripped


def _weight_scale_counts(content: bytes) -> list[int]:
    """Scales per int8 constant tensor of rank >= 2 (conv/dense weights) of a TFLite file."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    counts = []
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            buffer = model.buffers[tensor.buffer]
            constant = buffer.data is not None and len(buffer.data) > 0
            if constant and tensor.type == 9 and len(tensor.shape) >= 2:  # 9: INT8
                counts.append(len(tensor.quantization.scale))
    return counts


def test_per_tensor_weights_give_one_scale_per_weight_tensor(shared, tmp_path):
    """--per-tensor-weights: every int8 weight tensor has one scale (per-channel: one per output
    channel), the file is smaller, parity holds and the manifest says which files have it."""
    per_tensor = run_export_roundtrip(
        shared.model,
        tmp_path,
        ("tflite",),
        ("float32", "int8-dynamic", "int8-full"),
        shared.dataset,
        per_tensor_weights=True,
    )
    manifest, reference = per_tensor.manifest, shared.roundtrip.manifest
    for artifact_id in ("tflite-int8-dynamic", "tflite-int8-full"):
        artifact = manifest.artifact(artifact_id)
        assert artifact.per_tensor_weights and artifact.parity.passed
    # int8-full quantizes every weight (int8-dynamic leaves this tiny model's < 1024-element
    # weights float, so only the flag and parity are checked there)
    content = manifest.artifact_path("tflite-int8-full").read_bytes()
    assert set(_weight_scale_counts(content)) == {1}
    per_channel = reference.artifact_path("tflite-int8-full").read_bytes()
    assert max(_weight_scale_counts(per_channel)) > 1
    assert len(content) < len(per_channel)
    assert not manifest.artifact("tflite-float32").per_tensor_weights
    assert load_manifest(per_tensor.out_dir).artifact("tflite-int8-full").per_tensor_weights


def test_per_tensor_weights_need_a_tflite_int8_variant(shared, tmp_path):
    with pytest.raises(LowrankEdgeError, match="apply to TFLite int8 variants only"):
        export_model(
            shared.roundtrip.model_path,
            tmp_path / "out",
            formats=("tflite", "onnx"),
            tflite_variants=("float32",),
            per_tensor_weights=True,
        )
    assert not (tmp_path / "out").exists()
