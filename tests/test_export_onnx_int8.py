"""ONNX int8 variants (onnxruntime.quantization: static QDQ and dynamic) and every artifact's
accuracy on the whole test split, recorded in the manifest at export time."""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from ai_edge_litert.interpreter import Interpreter
from click.testing import CliRunner
from harness.bench import FAST_CLI_ARGS
from harness.export import PARITY_SAMPLES, shared_export
from onnx import numpy_helper

from lowrank_edge.benchmark.results.storage import read_results
from lowrank_edge.cli import main
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.export import (
    ONNX_VARIANTS,
    TFLITE_VARIANTS,
    TOLERANCES,
    export_model,
    plan_artifacts,
)
from lowrank_edge.fileio import sha256_file
from lowrank_edge.runtime import load_manifest, open_artifact

INT8_ONNX = ("onnx-int8-qdq", "onnx-int8-dynamic")


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return shared_export(tmp_path_factory)


def _op_counts(path) -> collections.Counter:
    return collections.Counter(node.op_type for node in onnx.load(path).graph.node)


def test_int8_onnx_artifacts_pass_the_int8_parity_rules_and_are_in_the_manifest(shared):
    manifest = shared.roundtrip.manifest
    for artifact_id, variant in zip(INT8_ONNX, ("int8-qdq", "int8-dynamic"), strict=True):
        artifact = manifest.artifact(artifact_id)
        path = manifest.artifact_path(artifact)
        assert (artifact.format, artifact.variant) == ("onnx", variant)
        assert artifact.file == f"model-{variant}.onnx"
        assert artifact.sha256 == sha256_file(path) and artifact.bytes == path.stat().st_size
        # the gate TFLite's int8 variants meet: the full-test accuracy drop; parity recorded
        assert TOLERANCES[variant] == TOLERANCES["int8-full"]
        assert (artifact.passed, artifact.gate) == (True, "test-accuracy")
        parity = artifact.parity
        assert parity.passed and parity.samples == PARITY_SAMPLES and parity.tolerance == {}
        assert parity.argmax_agreement >= 0.95
        drop = artifact.test_accuracy.keras_accuracy - artifact.test_accuracy.accuracy
        assert drop * 100 <= artifact.gate_limits["max_drop_points"]
        # float32 in and out: the runner needs no scale or zero point
        assert (artifact.input.dtype, artifact.output.dtype) == ("float32", "float32")
        assert artifact.input.scale is None and artifact.output.scale is None
    qdq = _op_counts(manifest.artifact_path("onnx-int8-qdq"))
    assert qdq["QuantizeLinear"] > 0 and qdq["DequantizeLinear"] > qdq["QuantizeLinear"]
    dynamic = _op_counts(manifest.artifact_path("onnx-int8-dynamic"))
    assert dynamic["DynamicQuantizeLinear"] > 0 and dynamic["Conv"] == 0  # every Conv quantized
    assert dynamic["ConvInteger"] > 0 and dynamic["MatMulInteger"] > 0


def test_qdq_weights_are_7_bit_int8_per_channel_and_activations_uint8(shared):
    """The settings quantize_onnx documents: per-channel int8 conv weights in the reduced range
    (-64..64, against saturation on x86 without VNNI) and uint8 activations."""
    model = onnx.load(shared.roundtrip.manifest.artifact_path("onnx-int8-qdq"))
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    conv_weights = []
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in initializers:
            continue
        weight, scale = initializers[node.input[0]], initializers[node.input[1]]
        if weight.data_type == onnx.TensorProto.INT8 and len(weight.dims) == 4:
            conv_weights.append((weight, scale))
    assert conv_weights and all(len(scale.dims) == 1 for _, scale in conv_weights)
    largest = max(np.abs(numpy_helper.to_array(w).astype(np.int16)).max() for w, _ in conv_weights)
    assert 32 < largest <= 64
    activations = [
        initializers[node.input[2]].data_type
        for node in model.graph.node
        if node.op_type == "QuantizeLinear"
    ]
    assert activations and set(activations) == {onnx.TensorProto.UINT8}


def _count_onnxruntime(path, x: np.ndarray, y: np.ndarray) -> int:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"image": x})
    return int(np.sum(np.argmax(logits, axis=1) == y))


def _count_litert(path, x: np.ndarray, y: np.ndarray) -> int:
    interpreter = Interpreter(model_path=str(path))
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert inp["dtype"] == np.float32 and out["dtype"] == np.float32  # no integer I/O here
    interpreter.resize_tensor_input(inp["index"], list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    logits = interpreter.get_tensor(out["index"])
    return int(np.sum(np.argmax(logits, axis=1) == y))


def test_manifest_test_accuracy_matches_an_independent_count(shared):
    """Each artifact run here straight through onnxruntime / LiteRT on the whole test split."""
    manifest, dataset = shared.roundtrip.manifest, shared.dataset
    x, y = dataset.x_test.astype(np.float32), dataset.y_test
    assert len(x) > PARITY_SAMPLES  # the whole split, not the parity samples
    keras_correct = int(np.sum(np.argmax(np.asarray(shared.model(x)), axis=1) == y))
    counters = {"onnx": _count_onnxruntime, "tflite": _count_litert}
    assert len(manifest.artifacts) == len(TFLITE_VARIANTS) + len(ONNX_VARIANTS)
    for artifact in manifest.artifacts:
        recorded = artifact.test_accuracy
        assert recorded is not None, artifact.id
        correct = counters[artifact.format](manifest.artifact_path(artifact), x, y)
        assert (recorded.images, recorded.correct) == (len(x), correct), artifact.id
        assert recorded.accuracy == correct / len(x)
        assert (recorded.keras_correct, recorded.keras_accuracy) == (
            keras_correct,
            keras_correct / len(x),
        )
    log = "\n".join(shared.roundtrip.log)
    assert f"on {len(x):,} images" in log and "test accuracy" in log


def test_export_without_a_dataset_records_no_test_accuracy(shared, tmp_path):
    manifest = export_model(
        shared.roundtrip.model_path,
        tmp_path / "out",
        formats=("onnx",),
        onnx_variants=("int8-dynamic",),
        parity_samples=8,
        log=lambda line: None,
    )
    (artifact,) = manifest.artifacts
    assert artifact.id == "onnx-int8-dynamic" and artifact.test_accuracy is None
    assert artifact.parity.passed and artifact.parity.accuracy is None  # random inputs


def test_qdq_without_a_dataset_is_refused(shared, tmp_path):
    with pytest.raises(LowrankEdgeError, match=r"int8-qdq variant needs a dataset.*--data SPEC"):
        export_model(
            shared.roundtrip.model_path,
            tmp_path / "out",
            formats=("onnx",),
            onnx_variants=("int8-qdq",),
        )
    assert not (tmp_path / "out").exists()


def test_plan_names_onnx_variants_and_refuses_unknown_ones():
    plan = plan_artifacts("e75", ["onnx", "tflite"], ["int8-dynamic"], ONNX_VARIANTS)
    assert [(p.id, p.file) for p in plan] == [
        ("onnx-float32", "e75.onnx"),
        ("onnx-int8-qdq", "e75-int8-qdq.onnx"),
        ("onnx-int8-dynamic", "e75-int8-dynamic.onnx"),
        ("tflite-int8-dynamic", "e75-int8-dynamic.tflite"),
    ]
    with pytest.raises(
        LowrankEdgeError, match=r"unknown ONNX variant 'int8-full'; choose from float32"
    ):
        plan_artifacts("e75", ["onnx"], ["float32"], ["int8-full"])
    with pytest.raises(LowrankEdgeError, match=r"choose at least one ONNX variant"):
        plan_artifacts("e75", ["onnx"], ["float32"], [])


def _cli_export_arguments(monkeypatch, shared, tmp_path, *args):
    """The keyword arguments `export` passes to export_model (which is replaced here)."""
    seen = {}

    def fake_export(model_path, out_dir, **options):
        seen.update(options)
        return dataclasses.replace(shared.roundtrip.manifest, path=out_dir / "manifest.json")

    monkeypatch.setattr("lowrank_edge.export.export_model", fake_export)
    monkeypatch.setattr("lowrank_edge.data.load_dataset", lambda *args, **kwargs: shared.dataset)
    result = CliRunner().invoke(main, ["export", str(tmp_path / "m.keras"), *args])
    return result, seen


def test_cli_all_variants_and_onnx_variants(monkeypatch, shared, tmp_path):
    result, seen = _cli_export_arguments(
        monkeypatch, shared, tmp_path, "--all-variants", "--dataset", "mnist"
    )
    assert result.exit_code == 0, result.output
    assert seen["formats"] == ("tflite", "onnx")
    assert seen["tflite_variants"] == TFLITE_VARIANTS
    assert seen["onnx_variants"] == ONNX_VARIANTS

    result, seen = _cli_export_arguments(
        monkeypatch, shared, tmp_path, "--format", "onnx", "--onnx-variants", "int8-qdq,float32"
    )
    assert result.exit_code == 0, result.output
    assert seen["onnx_variants"] == ("int8-qdq", "float32")

    result, seen = _cli_export_arguments(monkeypatch, shared, tmp_path, "--format", "onnx")
    assert seen["onnx_variants"] == ("float32",)  # the default stays the float32 model

    result, _ = _cli_export_arguments(
        monkeypatch, shared, tmp_path, "--format", "tflite", "--onnx-variants", "int8-qdq"
    )
    assert result.exit_code == 1
    assert "--onnx-variants applies to ONNX: add --format onnx" in result.output
    result, _ = _cli_export_arguments(monkeypatch, shared, tmp_path, "--onnx-variants", "int4")
    assert result.exit_code == 2 and "int4" in result.output


def test_int8_onnx_runs_in_the_runner_like_keras(shared):
    x = shared.dataset.x_test
    reference = np.argmax(np.asarray(shared.model(x)), axis=1)
    for artifact_id in INT8_ONNX:
        with open_artifact(shared.roundtrip.manifest, artifact_id, threads=1) as runner:
            predicted = np.argmax(runner.predict(x), axis=1)
        assert np.mean(predicted == reference) >= 0.99, artifact_id


def test_bench_times_the_onnx_int8_variants_on_onnxruntime(shared, tmp_path):
    out = tmp_path / "bench"
    args = ["bench", str(shared.roundtrip.out_dir), "--backends", "litert,onnxruntime",
            "--variants", "int8-qdq,int8-dynamic", "--out", str(out), *FAST_CLI_ARGS]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "litert: no model has variant(s) int8-qdq; skipped" in result.output
    records = read_results(out)
    timed = {(r["backend"], r["variant"]): r for r in records}
    assert set(timed) == {
        ("litert", "int8-dynamic"),
        ("onnxruntime", "int8-qdq"),
        ("onnxruntime", "int8-dynamic"),
    }
    assert all(r["status"] == "ok" for r in records), [r["error"] for r in records]
    assert timed[("onnxruntime", "int8-qdq")]["artifact"] == "onnx-int8-qdq"
    assert timed[("onnxruntime", "int8-dynamic")]["artifact"] == "onnx-int8-dynamic"
    assert timed[("litert", "int8-dynamic")]["artifact"] == "tflite-int8-dynamic"


def test_bench_times_every_exported_variant_by_default(shared, tmp_path):
    out = tmp_path / "bench"
    exported = {(a.format, a.variant) for a in shared.roundtrip.manifest.artifacts}
    args = ["bench", str(shared.roundtrip.out_dir), "--backends", "litert,onnxruntime",
            "--out", str(out), *FAST_CLI_ARGS]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "no model has variant" not in result.output  # nothing was asked for by name
    fmt = {"litert": "tflite", "onnxruntime": "onnx"}
    timed = {(fmt[r["backend"]], r["variant"]) for r in read_results(out)}
    assert timed == exported  # every artifact of the export, each on its own runtime
    assert {("onnx", "int8-qdq"), ("onnx", "float32")} <= timed


def test_a_model_without_a_format_sits_out_its_groups_by_default(shared, tmp_path):
    """Default sweep over a full export and a TFLite-only one: the TFLite-only model is timed on
    LiteRT and left out of the ONNX Runtime groups with a note, not recorded as failed there."""
    import json
    import shutil
    from pathlib import Path

    tflite_only = Path(shutil.copytree(shared.roundtrip.out_dir, tmp_path / "tflite-only"))
    manifest_path = tflite_only / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["artifacts"] = [a for a in manifest["artifacts"] if a["format"] == "tflite"]
    manifest_path.write_text(json.dumps(manifest))
    out = tmp_path / "bench"
    args = ["bench", str(shared.roundtrip.out_dir), str(tflite_only), "--backends",
            "litert,onnxruntime", "--variants", "float32", "--out", str(out),
            *FAST_CLI_ARGS]  # fmt: skip
    named = CliRunner().invoke(main, args)  # asked for by name: the gap is a failure, as before
    assert named.exit_code == 0, named.output
    failed = [r for r in read_results(out) if r["status"] != "ok"]
    assert [(r["backend"], r["model"]) for r in failed] == [("onnxruntime", "tflite-only")]

    default = [a for a in args if a not in ("--variants", "float32")] + ["--overwrite"]
    result = CliRunner().invoke(main, default)
    assert result.exit_code == 0, result.output
    records = read_results(out)
    assert all(r["status"] == "ok" for r in records)
    onnx_models = {r["model"] for r in records if r["backend"] == "onnxruntime"}
    assert "tflite-only" not in onnx_models and onnx_models
    assert {r["model"] for r in records if r["backend"] == "litert"} == onnx_models | {
        "tflite-only"
    }
    assert "not exported for tflite-only; skipped" in result.output


def test_calibration_count_is_used_recorded_and_checked(shared, tmp_path, monkeypatch):
    """--calibration-images sets how many training images calibrate int8-qdq / int8-full: the
    converters get exactly that many, the calibrated artifacts record it, the others do not."""
    import lowrank_edge.export.exporter as exporter
    import lowrank_edge.export.quantize_onnx as quantize_module

    seen = []
    real_pick = exporter.pick_representative

    def pick(dataset, count):
        seen.append(count)
        return real_pick(dataset, count)

    monkeypatch.setattr(exporter, "pick_representative", pick)
    fed = []
    real_quantize = quantize_module.quantize_onnx

    def quantize(model, variant, workdir, representative=None):
        fed.append(None if representative is None else len(representative))
        return real_quantize(model, variant, workdir, representative)

    monkeypatch.setattr(quantize_module, "quantize_onnx", quantize)
    manifest = export_model(
        shared.roundtrip.model_path,
        tmp_path / "out",
        formats=("onnx",),
        onnx_variants=("float32", "int8-qdq", "int8-dynamic"),
        dataset=shared.dataset,
        parity_samples=PARITY_SAMPLES,
        calibration_images=7,
        log=lambda line: None,
    )
    assert seen == [7] and fed[0] == 7
    counts = {a.id: a.calibration_images for a in manifest.artifacts}
    assert counts == {"onnx-float32": None, "onnx-int8-qdq": 7, "onnx-int8-dynamic": None}
    reread = load_manifest(tmp_path / "out")
    assert reread.artifact("onnx-int8-qdq").calibration_images == 7


def test_default_calibration_takes_200_images_or_the_whole_smaller_split(shared):
    split = len(shared.dataset.x_train)
    expected = min(200, split)
    manifest = shared.roundtrip.manifest
    assert manifest.artifact("onnx-int8-qdq").calibration_images == expected
    assert manifest.artifact("tflite-int8-full").calibration_images == expected
    assert manifest.artifact("tflite-int8-dynamic").calibration_images is None


def test_calibration_count_beyond_the_training_split_is_refused(shared, tmp_path):
    too_many = len(shared.dataset.x_train) + 1
    with pytest.raises(LowrankEdgeError, match=f"{too_many} asked for.*has only"):
        export_model(
            shared.roundtrip.model_path,
            tmp_path / "out",
            formats=("onnx",),
            onnx_variants=("int8-qdq",),
            dataset=shared.dataset,
            calibration_images=too_many,
            log=lambda line: None,
        )
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(
        main, ["export", str(shared.roundtrip.model_path), "--calibration-images", "0"]
    )
    assert result.exit_code == 2 and "--calibration-images" in result.output
