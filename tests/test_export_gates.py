"""Export gates per kind of variant: float parity, the quantized test-accuracy drop
(--max-quant-drop), float agreement without labelled data; a failed variant written and marked
`"passed": false` (or left out with --strict) while the others are written; the exit status;
the manifest fields, old manifests, and bench / recommend skipping a marked artifact."""

from __future__ import annotations

import json

import numpy as np
import pytest
from harness.bench import FAST_CLI_ARGS
from harness.bench_records import FakeArtifact, Group, write_bench, write_export
from harness.cli import run_cli
from harness.export import copy_export, shared_export

from lowrank_edge.benchmark.recommend import recommend
from lowrank_edge.benchmark.recommend_inputs import Filters, group_candidates, read_bench
from lowrank_edge.benchmark.results.storage import read_results
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.export import ParityError, export_model
from lowrank_edge.export.gates import check_max_quant_drop, judge
from lowrank_edge.export.variants import DEFAULT_MAX_QUANT_DROP, QUANTIZED_VARIANTS
from lowrank_edge.runtime import AccuracyInfo, Parity, load_manifest
from lowrank_edge.runtime.manifest import manifest_from_dict

ONNX_QDQ = (
    "--format", "onnx", "--onnx-variants", "float32,int8-qdq", "--samples", "32",
    "--preprocess", "unit",
)  # fmt: skip


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return shared_export(tmp_path_factory)


def _parity(agreement: float) -> Parity:
    return Parity(64, 0.5, 0.1, agreement, None, None, True, {})


def _accuracy(correct: int, keras_correct: int, images: int = 1000) -> AccuracyInfo:
    return AccuracyInfo(images, correct, correct / images, keras_correct, keras_correct / images)


def test_quantized_variants_are_judged_by_the_test_accuracy_drop():
    # 0.97 agreement would fail the old 99% rule: not a gate any more when labels are there
    within = judge("int8-full", _parity(0.97), _accuracy(842, 850), 1.0)  # 0.8 points
    assert (within.gate, within.passed, within.limits) == (
        "test-accuracy",
        True,
        {"max_drop_points": 1.0},
    )
    gain = judge("int8-qdq", _parity(0.9), _accuracy(860, 850), 0.0)
    assert gain.passed  # only a drop counts
    beyond = judge("int8-dynamic", _parity(1.0), _accuracy(835, 850), 1.0)  # 1.5 points
    assert not beyond.passed and beyond.gate == "test-accuracy"
    assert beyond.failure == (
        "test accuracy 83.50% vs Keras float32 85.00% on 1,000 images: drop 1.50 points > 1 "
        "(--max-quant-drop)"
    )


def test_float_variants_keep_parity_and_unlabelled_quantized_ones_agree_with_float():
    far = Parity(64, 2e-4, 1e-5, 1.0, None, None, False, {})
    verdict = judge("float32", far, _accuracy(850, 850), DEFAULT_MAX_QUANT_DROP)
    assert (verdict.gate, verdict.passed) == ("parity", False)
    assert verdict.failure == "max |dlogit| 0.0002 > 0.0001"
    unlabelled = judge("int8-dynamic", _parity(0.985), None, DEFAULT_MAX_QUANT_DROP)
    assert (unlabelled.gate, unlabelled.passed) == ("float-agreement", False)
    assert unlabelled.limits == {"argmax_agreement": 0.99}
    assert unlabelled.failure == "argmax agreement 98.50% < 99%"
    unchecked = judge("int8-full", None, _accuracy(1, 850), DEFAULT_MAX_QUANT_DROP)
    assert (unchecked.gate, unchecked.passed) == (None, True)  # --no-verify


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "1", True])
def test_max_quant_drop_must_be_points_at_least_zero(bad):
    with pytest.raises(LowrankEdgeError, match="--max-quant-drop: expected points >= 0"):
        check_max_quant_drop(bad)


def test_shared_export_records_each_variants_gate(shared):
    for artifact in shared.roundtrip.manifest.artifacts:
        assert artifact.passed and artifact.gate_failure is None, artifact
        if artifact.variant in QUANTIZED_VARIANTS:
            assert artifact.gate == "test-accuracy"
            assert artifact.gate_limits == {"max_drop_points": DEFAULT_MAX_QUANT_DROP}
            assert artifact.parity.tolerance == {}  # argmax agreement recorded, not a limit
            assert artifact.parity.argmax_agreement > 0
        else:
            assert artifact.gate == "parity"
            assert artifact.gate_limits == artifact.parity.tolerance != {}


def _zero_calibration_npz(shared, path):
    """An .npz whose training split (int8 calibration) is all zeros; real test images."""
    data = shared.dataset
    to_bytes = lambda x: np.round(x[..., 0] * 255).astype(np.uint8)  # noqa: E731
    with open(path, "wb") as handle:
        np.savez(
            handle,
            x_train=np.zeros_like(to_bytes(data.x_train)),
            y_train=data.y_train,
            x_test=to_bytes(data.x_test),
            y_test=data.y_test,
        )
    return path


def test_a_quantized_variant_beyond_the_drop_is_marked_or_left_out_with_strict(shared, tmp_path):
    """All-zero calibration images break int8-qdq (its full-test accuracy collapses): by default
    it is written and marked, exit 0; with --strict it is left out, exit 1; onnx-float32 is
    written either way."""
    npz = _zero_calibration_npz(shared, tmp_path / "zeros.npz")
    model = shared.roundtrip.model_path
    marked = tmp_path / "marked"
    result = run_cli("export", model, "--data", npz, *ONNX_QDQ, "--out-dir", marked)
    assert result.exit_code == 0, result.output
    manifest = load_manifest(marked)
    assert [a.id for a in manifest.artifacts] == ["onnx-float32", "onnx-int8-qdq"]
    qdq = manifest.artifact("onnx-int8-qdq")
    assert (qdq.passed, qdq.gate) == (False, "test-accuracy")
    drop = (qdq.test_accuracy.keras_accuracy - qdq.test_accuracy.accuracy) * 100
    assert drop > DEFAULT_MAX_QUANT_DROP and f"drop {drop:.2f} points > 1" in qdq.gate_failure
    assert manifest.artifact("onnx-float32").passed
    assert (marked / qdq.file).is_file()
    assert (
        "warning: onnx-int8-qdq failed its test-accuracy gate (test accuracy" in result.output
        and 'marked "passed": false' in result.output
    )

    strict = tmp_path / "strict"
    result = run_cli("export", model, "--data", npz, *ONNX_QDQ, "--out-dir", strict, "--strict")
    assert result.exit_code == 1
    assert "left out 1 artifact(s) that failed their gate (--strict), wrote the 1 others" in (
        result.output
    )
    assert "onnx-int8-qdq (test-accuracy gate): test accuracy" in result.output
    manifest = load_manifest(strict)
    assert [a.id for a in manifest.artifacts] == ["onnx-float32"]
    assert not (strict / qdq.file).exists()
    assert sorted(p.name for p in strict.iterdir()) == [
        "manifest.json",
        "model.onnx",
        "samples.npz",
    ]

    # a drop bound wide enough lets the same file pass
    wide = tmp_path / "wide"
    result = run_cli(
        "export", model, "--data", npz, *ONNX_QDQ, "--out-dir", wide, "--strict",
        "--max-quant-drop", "100",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert load_manifest(wide).artifact("onnx-int8-qdq").gate_limits == {"max_drop_points": 100.0}


def _nan_float32_converter(model, monkeypatch):
    """Make tflite-float32 an all-NaN model (the prototype's `from_concrete_functions` path);
    the other TFLite variants convert as usual."""
    import tensorflow as tf

    from lowrank_edge.export import to_tflite

    real = to_tflite.convert_tflite

    def convert(saved_model, variant, *args):
        if variant != "float32":
            return real(saved_model, variant, *args)
        serve = tf.function(
            lambda image: model(image, training=False),
            input_signature=[tf.TensorSpec((None, 28, 28, 1), tf.float32)],
        )
        converter = tf.lite.TFLiteConverter.from_concrete_functions(
            [serve.get_concrete_function()], model
        )
        return converter.convert()

    monkeypatch.setattr("lowrank_edge.export.to_tflite.convert_tflite", convert)


def test_a_float_variant_failing_parity_is_marked_or_left_out_the_same_way(
    shared, tmp_path, monkeypatch
):
    _nan_float32_converter(shared.model, monkeypatch)
    options = dict(
        formats=("tflite",),
        tflite_variants=("float32", "int8-dynamic"),
        dataset=shared.dataset,
        parity_samples=16,
    )
    log: list[str] = []
    manifest = export_model(shared.roundtrip.model_path, tmp_path / "a", log=log.append, **options)
    broken = manifest.artifact("tflite-float32")
    assert (broken.passed, broken.gate) == (False, "parity")
    assert broken.gate_failure.startswith("max |dlogit| inf > 0.0001")
    assert manifest.artifact("tflite-int8-dynamic").passed
    assert load_manifest(tmp_path / "a") == manifest
    assert any(line.startswith("[export] warning: tflite-float32 failed") for line in log)

    out = tmp_path / "b"
    with pytest.raises(
        ParityError, match=r"left out 1 artifact\(s\).*tflite-float32 \(parity gate"
    ):
        export_model(
            shared.roundtrip.model_path, out, strict=True, log=lambda line: None, **options
        )
    assert [a.id for a in load_manifest(out).artifacts] == ["tflite-int8-dynamic"]
    assert not (out / broken.file).exists()

    alone = tmp_path / "c"
    with pytest.raises(ParityError, match="every artifact failed its gate, nothing was written"):
        export_model(
            shared.roundtrip.model_path,
            alone,
            **{**options, "tflite_variants": ("float32",)},
            strict=True,
            log=lambda line: None,
        )
    assert not alone.exists(), "a strict export with nothing passing left files behind"


def test_export_without_data_records_the_float_agreement_gate(shared, tmp_path):
    manifest = export_model(
        shared.roundtrip.model_path,
        tmp_path / "out",
        formats=("tflite",),
        tflite_variants=("float32", "int8-dynamic"),
        parity_samples=32,
        log=lambda line: None,
    )
    float32, dynamic = manifest.artifacts
    assert float32.gate == "parity" and dynamic.test_accuracy is None
    assert dynamic.gate == "float-agreement"
    assert dynamic.gate_limits == dynamic.parity.tolerance == {"argmax_agreement": 0.99}
    assert dynamic.passed == (dynamic.parity.argmax_agreement >= 0.99)
    assert load_manifest(tmp_path / "out").artifact("tflite-int8-dynamic").gate == (
        "float-agreement"
    )


def test_old_manifest_without_gate_fields_reads_as_passed(shared):
    data = json.loads((shared.roundtrip.out_dir / "manifest.json").read_text())
    for entry in data["artifacts"]:
        for key in ("passed", "gate", "gate_limits", "gate_failure"):
            del entry[key]
    old = manifest_from_dict(data)
    assert all(a.passed and a.gate is None and a.gate_limits == {} for a in old.artifacts)
    assert old.failed == () and old.without_failed() == old


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("passed", "no", r"'artifacts\[0\]\.passed' must be true or false"),
        ("gate", "vibes", r"'artifacts\[0\]\.gate' must be one of parity, test-accuracy"),
        ("gate_limits", {"max_drop_points": "1"}, r"'artifacts\[0\]\.gate_limits\.max_drop_po"),
    ],
)
def test_bad_gate_fields_are_refused(shared, key, value, message):
    data = json.loads((shared.roundtrip.out_dir / "manifest.json").read_text())
    data["artifacts"][0][key] = value
    with pytest.raises(LowrankEdgeError, match=message):
        manifest_from_dict(data)


def _mark_failed(folder, artifact_id: str) -> None:
    """Edit the manifest in `folder` as an export whose `artifact_id` failed its gate."""
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    for entry in data["artifacts"]:
        if entry["id"] == artifact_id:
            entry.update(passed=False, gate="test-accuracy", gate_failure="drop 3.00 points > 1")
    path.write_text(json.dumps(data))


def test_bench_skips_an_artifact_marked_failed(shared, tmp_path_factory, tmp_path):
    folder = copy_export(shared, tmp_path)
    _mark_failed(folder, "onnx-int8-qdq")
    out = tmp_path / "bench"
    result = run_cli("bench", folder, "--backends", "onnxruntime", "--out", out, *FAST_CLI_ARGS)
    assert result.exit_code == 0, result.output
    assert (
        'note: export: skipped onnx-int8-qdq (test-accuracy): marked "passed": false at export'
        in result.output
    )
    timed = {r["artifact"] for r in read_results(out)}
    assert timed == {"onnx-float32", "onnx-int8-dynamic"}

    # asked for by name beside a model whose int8-qdq passed: its record says why it is absent
    named = run_cli(
        "bench", shared.roundtrip.out_dir, folder, "--backends", "onnxruntime", "--variants",
        "int8-qdq", "--out", tmp_path / "named", *FAST_CLI_ARGS,
    )  # fmt: skip
    assert named.exit_code == 0, named.output
    passing, marked = read_results(tmp_path / "named")
    assert passing["status"] == "ok" and marked["status"] != "ok"
    assert (
        'onnx-int8-qdq is marked "passed": false (it failed its test-accuracy gate'
        in (marked["error"])
    )


def test_recommend_skips_an_artifact_marked_failed(tmp_path):
    exports = {
        name: write_export(
            tmp_path / name,
            name,
            [FakeArtifact("tflite", v, 1000, acc, acc) for v, acc in variants],
        )
        for name, variants in {
            "base": [("float32", 0.99)],
            "e50": [("float32", 0.988), ("int8-full", 0.987)],
        }.items()
    }
    group = {"base": [1.0, 1.0], "e50": [0.6, 0.6]}
    groups = [Group("litert", "float32", group), Group("litert", "int8-full", {"e50": [0.3, 0.3]})]
    write_bench(tmp_path / "bench", "dev", exports, groups)

    def answer():
        return recommend(group_candidates(read_bench([tmp_path / "bench"]), Filters()), 1.0, [])

    (before,) = answer().conditions
    assert before.winner.label == "e50 tflite-int8-full"
    _mark_failed(exports["e50"], "tflite-int8-full")
    (after,) = answer().conditions
    assert after.winner.label == "e50 tflite-float32"
    assert 'e50: skipped tflite-int8-full (test-accuracy): marked "passed": false' in "\n".join(
        after.notes
    )
    assert all(e.label != "e50 tflite-int8-full" for e in after.entries)
