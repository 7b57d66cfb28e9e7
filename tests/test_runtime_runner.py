"""The runners: TF-free prediction in a subprocess, options, profiling and clear errors."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
from harness.export import (
    assert_within_tolerance,
    block_imports_code,
    copy_export,
    run_python,
    shared_export,
)

from lowrank_edge.errors import LowrankEdgeError, MissingDependencyError
from lowrank_edge.runtime import (
    TensorIO,
    load_manifest,
    open_artifact,
    open_litert,
    open_onnxruntime,
)
from lowrank_edge.runtime.quantize import dequantize, quantize
from lowrank_edge.runtime.quiet import captured_output


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return shared_export(tmp_path_factory)


def test_runner_predicts_without_tensorflow(shared, tmp_path):
    """A device has no TF: load the manifest, verify and run every artifact with TF blocked."""
    folder, result = shared.roundtrip.out_dir, tmp_path / "logits.npz"
    code = (
        block_imports_code()
        + f"""
import numpy as np
import lowrank_edge.cli.export_cmd  # CLI modules import without TF too
from lowrank_edge.runtime import load_manifest, open_artifact

manifest = load_manifest({str(folder)!r})
x, y = manifest.load_samples()
logits = {{}}
for artifact in manifest.artifacts:
    with open_artifact(manifest, artifact.id, threads=1) as runner:
        logits[artifact.id] = runner.predict(x)
np.savez({str(result)!r}, x=x, **logits)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {{"tensorflow", "keras", "tf2onnx"}})
print("loaded:", loaded)
"""
    )
    done = run_python(code, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "loaded: []" in done.stdout
    with np.load(result) as saved:
        x = saved["x"]
        reference = np.asarray(shared.model(x, training=False))
        for artifact in shared.roundtrip.manifest.artifacts:
            assert_within_tolerance(artifact.variant, reference, saved[artifact.id], artifact.id)


def test_missing_runtime_says_what_to_install(shared, tmp_path):
    folder = shared.roundtrip.out_dir
    code = (
        block_imports_code(("ai_edge_litert", "onnxruntime"))
        + f"""
from lowrank_edge.errors import MissingDependencyError
from lowrank_edge.runtime import load_manifest, open_artifact

manifest = load_manifest({str(folder)!r})
for artifact_id in ("tflite-float32", "onnx-float32"):
    try:
        open_artifact(manifest, artifact_id)
    except MissingDependencyError as error:
        print(error)
"""
    )
    done = run_python(code, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2
    assert (
        "LiteRT runtime is not installed" in lines[0] and "pip install ai-edge-litert" in lines[0]
    )
    assert "ONNX Runtime is not installed" in lines[1] and "pip install onnxruntime" in lines[1]
    assert issubclass(MissingDependencyError, LowrankEdgeError)


def test_litert_without_xnnpack_gives_the_same_logits(shared):
    manifest, x = shared.roundtrip.manifest, shared.dataset.x_test[:16]
    path = manifest.artifact_path("tflite-float32")
    with open_litert(path, num_threads=1) as fast, open_litert(path, use_xnnpack=False) as plain:
        np.testing.assert_allclose(plain.predict(x), fast.predict(x), rtol=0, atol=1e-5)


def test_onnxruntime_profiling_writes_a_trace(shared, tmp_path):
    manifest = shared.roundtrip.manifest
    runner = open_artifact(manifest, "onnx-float32", profile_prefix=str(tmp_path / "ort"))
    runner.predict(shared.dataset.x_test[:4])
    trace = Path(runner.end_profiling())
    runner.close()
    events = json.loads(trace.read_text())
    assert trace.parent == tmp_path and any(e.get("cat") == "Node" for e in events)
    with pytest.raises(LowrankEdgeError, match="profiling is only available for ONNX Runtime"):
        open_artifact(manifest, "tflite-float32", profile_prefix=str(tmp_path / "x"))
    with (
        open_artifact(manifest, "onnx-float32") as plain,
        pytest.raises(LowrankEdgeError, match="profiling was not enabled"),
    ):
        plain.end_profiling()


@pytest.mark.parametrize("threads", [0, -2])
@pytest.mark.parametrize("artifact_id", ["tflite-float32", "onnx-float32"])
def test_bad_thread_count_is_refused(shared, artifact_id, threads):
    with pytest.raises(
        LowrankEdgeError, match=rf"must be a positive integer or None, got {threads}"
    ):
        open_artifact(shared.roundtrip.manifest, artifact_id, threads=threads)


@pytest.mark.parametrize("artifact_id", ["tflite-int8-full", "onnx-float32"])
def test_wrong_input_shape_is_reported(shared, artifact_id):
    with open_artifact(shared.roundtrip.manifest, artifact_id) as runner:
        with pytest.raises(
            LowrankEdgeError, match=r"expected input shape \(N, 28, 28, 1\), got \(2, 28, 28\)"
        ):
            runner.predict(np.zeros((2, 28, 28), np.float32))


@pytest.mark.parametrize(
    "artifact_id, opener, runtime",
    [("tflite-float32", open_litert, "LiteRT"), ("onnx-float32", open_onnxruntime, "ONNX Runtime")],
)
def test_unloadable_model_file_is_reported(shared, tmp_path, artifact_id, opener, runtime):
    folder = copy_export(shared, tmp_path)
    path = load_manifest(folder).artifact_path(artifact_id)
    path.write_bytes(b"\0" * 64)
    with pytest.raises(LowrankEdgeError, match=rf"{runtime} cannot load this model"):
        opener(path)


@pytest.mark.parametrize("artifact_id", ["tflite-float32", "onnx-float32"])
def test_every_open_checks_the_bytes_it_loads(shared, tmp_path, artifact_id):
    """A file swapped after a successful open (here for another valid model) is refused next."""
    manifest = load_manifest(copy_export(shared, tmp_path))
    x = shared.dataset.x_test[:4]
    with open_artifact(manifest, artifact_id) as runner:
        expected = runner.predict(x)
    path = manifest.artifact_path(artifact_id)
    original = path.read_bytes()
    path.write_bytes(manifest.artifact_path("tflite-int8-full").read_bytes())
    with pytest.raises(LowrankEdgeError, match=rf"artifact '{artifact_id}' .*SHA-256 mismatch"):
        open_artifact(manifest, artifact_id)
    path.write_bytes(original)  # the checked bytes are what runs: same logits as before
    with open_artifact(manifest, artifact_id) as runner:
        path.write_bytes(b"\0" * 64)  # the runner holds its own copy of the checked bytes
        np.testing.assert_array_equal(runner.predict(x), expected)


def test_manifest_io_must_match_the_model_file(shared):
    manifest = shared.roundtrip.manifest
    artifact = manifest.artifact("tflite-int8-full")
    stale = dataclasses.replace(artifact, input=TensorIO(artifact.input.name, "int8", 0.5, 3))
    with pytest.raises(
        LowrankEdgeError, match=r"manifest input int8 \(scale 0\.5, zero point 3\) does not match"
    ):
        open_litert(manifest.artifact_path(artifact), io=stale)


def test_quantize_round_trip_and_clipping():
    io = TensorIO("x", "uint8", scale=1 / 255, zero_point=0)
    grid = np.arange(256, dtype=np.float32) / np.float32(255)
    np.testing.assert_array_equal(quantize(grid, io), np.arange(256, dtype=np.uint8))
    np.testing.assert_allclose(dequantize(quantize(grid, io), io), grid, atol=1e-7)
    signed = TensorIO("x", "int8", scale=0.1, zero_point=-10)
    np.testing.assert_array_equal(
        quantize(np.array([-50.0, 0.0, 0.26, 50.0]), signed), [-128, -10, -7, 127]
    )
    plain = TensorIO("x", "float32")
    assert quantize(grid, plain).dtype == np.float32 and not plain.quantized


def test_captured_output_catches_native_writes(capfd):
    with captured_output() as capture:
        os.write(1, b"native stdout\n")
        os.write(2, b"native stderr\n")
        print("python stdout")
    shown = capfd.readouterr()
    assert "native" not in shown.out + shown.err and "python" not in shown.out
    assert {"native stdout", "native stderr", "python stdout"} <= set(capture.text.splitlines())
    with captured_output(enabled=False) as passthrough:
        os.write(2, b"visible\n")
    assert "visible" in capfd.readouterr().err and passthrough.text == ""
