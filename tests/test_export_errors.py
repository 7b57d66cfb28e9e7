"""Export failures: refused overwrites, corrupt models, missing datasets, bad options, and a
broken conversion that the parity check must stop before anything is written."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from harness.export import copy_export, shared_export

from lowrank_edge.cli import main
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.export import (
    TOLERANCES,
    compare_logits,
    export_model,
    plan_artifacts,
)
from lowrank_edge.runtime import load_manifest


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return shared_export(tmp_path_factory)


def _snapshot(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_existing_export_is_refused_and_left_untouched(shared, tmp_path):
    folder = copy_export(shared, tmp_path)
    before = _snapshot(folder)
    with pytest.raises(LowrankEdgeError, match=r"manifest.json already exists; pass --overwrite"):
        export_model(shared.roundtrip.model_path, folder, dataset=shared.dataset)
    assert _snapshot(folder) == before


def test_overwrite_replaces_the_export_and_drops_stale_artifacts(shared, tmp_path):
    folder = copy_export(shared, tmp_path)
    (folder / "notes.txt").write_text("the user's own file")
    manifest = export_model(
        shared.roundtrip.model_path,
        folder,
        formats=("onnx",),
        dataset=shared.dataset,
        parity_samples=16,
        overwrite=True,
        log=lambda line: None,
    )
    assert sorted(p.name for p in folder.iterdir()) == [
        "manifest.json",
        "model.onnx",
        "notes.txt",
        "samples.npz",
    ]
    assert load_manifest(folder) == manifest and [a.id for a in manifest.artifacts] == [
        "onnx-float32"
    ]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"this is not a zip archive", r"model\.keras: not a Keras v3 \.keras archive"),
        ("truncated", r"model\.keras: (could not load the model|not a Keras v3)"),
    ],
)
def test_corrupt_keras_file_gives_one_clear_error(shared, tmp_path, content, message):
    if content == "truncated":
        whole = shared.roundtrip.model_path.read_bytes()
        content = whole[: len(whole) // 2]
    model_path = tmp_path / "model.keras"
    model_path.write_bytes(content)
    with pytest.raises(LowrankEdgeError, match=message):
        export_model(model_path, tmp_path / "out", dataset=shared.dataset)
    assert not any((tmp_path / "out").glob("*")), "a failed export wrote files"

    result = CliRunner().invoke(main, ["export", str(model_path), "--out-dir", str(tmp_path / "o")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "model.keras" in lines[0]


def test_int8_full_without_a_dataset_is_refused(shared, tmp_path):
    with pytest.raises(LowrankEdgeError, match=r"int8-full variant needs a dataset.*--data SPEC"):
        export_model(shared.roundtrip.model_path, tmp_path / "out", tflite_variants=["int8-full"])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "options, message",
    [
        ({"formats": ["tflite", "coreml"]}, r"unknown export format 'coreml'; choose from"),
        ({"tflite_variants": ["int4"]}, r"unknown TFLite variant 'int4'; choose from"),
        ({"formats": []}, r"choose at least one export format"),
        ({"int8_io": True}, r"int8-full TFLite variant only: add --variant int8-full"),
        ({"parity_samples": 0}, r"parity samples must be a positive integer, got 0"),
        ({"formats": ["onnx"], "opset": 99}, r"ONNX opset 99 is not supported by tf2onnx"),
    ],
)
def test_bad_options_are_reported(shared, tmp_path, options, message):
    with pytest.raises(LowrankEdgeError, match=message):
        export_model(
            shared.roundtrip.model_path,
            tmp_path / "out",
            dataset=shared.dataset,
            log=lambda line: None,
            **options,
        )
    assert not (tmp_path / "out").exists()


def test_plan_names_artifacts_and_drops_duplicates():
    plan = plan_artifacts(
        "e75", ["tflite", "onnx", "tflite"], ["int8-full", "float32", "int8-full"]
    )
    assert [(p.id, p.file) for p in plan] == [
        ("tflite-int8-full", "e75-int8-full.tflite"),
        ("tflite-float32", "e75-float32.tflite"),
        ("onnx-float32", "e75.onnx"),
    ]


def _logits(n: int, classes: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 3, (n, classes)).astype(np.float32)


def _flip(logits: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Move the top logit of `rows` to another class."""
    flipped = logits.copy()
    for row in rows:
        top = flipped[row].argmax()
        flipped[row, (top + 1) % flipped.shape[1]] = flipped[row, top] + 1.0
    return flipped


def test_float_tolerance_is_a_max_logit_difference():
    reference = _logits(100)
    close = compare_logits(reference, reference + 5e-5, None, TOLERANCES["float32"])
    far = compare_logits(reference, reference + 2e-4, None, TOLERANCES["float32"])
    assert close.passed and not far.passed
    assert far.max_abs_diff == pytest.approx(2e-4, rel=1e-2) and far.accuracy is None


def test_quantized_tolerance_allows_one_percent_of_argmax_changes():
    reference = _logits(200)
    tolerance = TOLERANCES["int8-full"]
    assert compare_logits(reference, _flip(reference, np.arange(2)), None, tolerance).passed
    three = compare_logits(reference, _flip(reference, np.arange(3)), None, tolerance)
    assert not three.passed and three.argmax_agreement == pytest.approx(0.985)


def test_quantized_tolerance_bounds_the_accuracy_change():
    reference = _logits(1000)
    labels = reference.argmax(axis=1)  # Keras is right everywhere
    # 6 of 1000 flipped: agreement 99.4% passes, but accuracy drops 0.6 points > 0.5.
    parity = compare_logits(
        reference, _flip(reference, np.arange(6)), labels, TOLERANCES["float16"]
    )
    assert parity.argmax_agreement == pytest.approx(0.994)
    assert (parity.keras_accuracy, parity.accuracy) == (1.0, pytest.approx(0.994))
    assert not parity.passed


def test_nan_rows_count_as_wrong():
    reference = _logits(100)
    candidate = reference.copy()
    candidate[:2] = np.nan
    parity = compare_logits(reference, candidate, reference.argmax(axis=1), TOLERANCES["int8-full"])
    assert parity.argmax_agreement == pytest.approx(0.98) and parity.accuracy == pytest.approx(0.98)
    assert parity.max_abs_diff == float("inf") and not parity.passed
