"""`--data SPEC` on the CLI: a folder and an .npz reach data, evaluate and export, fitted to the
model's input, with the preprocessing recorded in the manifest."""

import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from harness.data import make_labels, make_rgb_images, write_image_folder

from lowrank_edge.cli import main
from lowrank_edge.data import load_data
from lowrank_edge.export.facts import pick_test_samples
from lowrank_edge.runtime.manifest import load_manifest


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def tiny_model(path: Path, shape: tuple[int, int, int], classes: int = 3) -> Path:
    import keras

    from lowrank_edge.model.saving import save_model

    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape)
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return save_model(keras.Model(inputs, keras.layers.Dense(classes)(x)), path)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "flowers"
    write_image_folder(root, {"daisy": 10, "rose": 10, "tulip": 10}, size=(12, 10))
    return root


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("models") / "rgb.keras", (12, 10, 3))


def test_data_shows_a_folder_with_its_classes_and_input_values(folder):
    result = run("data", folder)
    assert result.exit_code == 0, result.output
    assert "dataset flowers: 3 classes" in result.output
    assert "input byte, range [0, 255]" in result.output
    assert "labels  daisy rose tulip" in result.output
    result = run("data", folder, "--image-size", "6x5", "--preprocess", "unit")
    assert "train x=(19, 6, 5, 3)" in result.output and "input unit, range [0, 1]" in result.output


def test_evaluate_fits_the_images_to_the_model(folder, tmp_path):
    bigger = tiny_model(tmp_path / "big.keras", (16, 16, 1))
    for path in (tiny_model(tmp_path / "m.keras", (12, 10, 3)), bigger):
        result = run("evaluate", path, "--data", folder)
        assert result.exit_code == 0, result.output
        assert "test acc" in result.output
    result = run("evaluate", bigger, "--data", folder, "--image-size", "8x8")
    assert result.exit_code == 1
    assert "error: --image-size 8x8 does not match the model's input 16x16" in result.output


def test_evaluate_reads_an_npz(model, tmp_path):
    path = tmp_path / "cells.npz"
    x, y = make_rgb_images(20, (12, 10)), make_labels(20, 3).astype(np.int64)
    with open(path, "wb") as handle:
        np.savez(handle, x=x, y=y)
    result = run("evaluate", model, "--dataset", path)
    assert result.exit_code == 0, result.output


def test_export_records_the_preprocessing_and_feeds_the_dataset_values(model, folder, tmp_path):
    out = tmp_path / "export"
    result = run(
        "export", model, "--data", folder, "--preprocess", "torch", "--format", "tflite",
        "--variant", "float32,int8-full", "--out-dir", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = load_manifest(out)
    data = load_data(str(folder), preprocessing="torch", image_shape=(12, 10, 3))
    assert manifest.model.input.preprocessing == "torch"
    assert manifest.model.input.range == data.input_range
    with np.load(out / "samples.npz") as stored:
        assert stored["x"].dtype == np.uint8
    x, y = manifest.load_samples()
    expected_x, expected_y = pick_test_samples(data, len(x))
    np.testing.assert_allclose(x, expected_x, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(y, expected_y)
    assert all(a.parity.passed for a in manifest.artifacts)
    assert manifest.artifact("tflite-int8-full").calibration_images == len(data.x_train)


def test_pipeline_output_defaults_to_the_folder_name(folder, monkeypatch, tmp_path):
    import lowrank_edge.pipeline.run as run_module

    seen = {}

    def capture(config, data, log):
        seen.update(config=config, data=data())
        return []

    monkeypatch.setattr(run_module, "run_pipeline", capture)
    monkeypatch.chdir(tmp_path)
    result = run("pipeline", "--data", folder, "--image-size", "8x8")
    assert result.exit_code == 0, result.output
    assert seen["config"].out_dir == Path("models") / "flowers"
    assert seen["data"].x_train.shape[1:] == (8, 8, 3)


def test_tfds_without_tensorflow_datasets_is_one_error_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    result = run("data", "tfds:mnist")
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        "error: tfds: datasets need tensorflow-datasets: pip install 'lowrank-edge[tfds]'"
    )


def test_data_options_without_data_are_refused(model):
    result = run("export", model, "--preprocess", "byte", "--out-dir", "x")
    assert result.exit_code == 1
    assert "error: --preprocess applies to data: pass --data SPEC too" in result.output


def test_stream_keeps_a_folder_on_disk_through_evaluate_compress_and_export(
    model, folder, tmp_path
):
    def accuracy_lines(output: str) -> list[str]:
        return [line for line in output.splitlines() if line.startswith(("val", "test"))]

    in_memory = run("evaluate", model, "--data", folder)
    streamed = run("evaluate", model, "--data", folder, "--stream")
    assert streamed.exit_code == 0, streamed.output
    assert "streamed from disk, batch by batch (as asked)" in streamed.output
    assert accuracy_lines(streamed.output) == accuracy_lines(in_memory.output) != []

    small = tmp_path / "small.keras"
    result = run(
        "compress", model, "--data", folder, "--stream", "--target-macs", 0.6,
        "--finetune-epochs", 1, "--calibration-images", 8, "--out", small,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert small.is_file()

    manifests = {}
    for name, extra in (("memory", []), ("streamed", ["--stream"])):
        out = tmp_path / name
        result = run(
            "export", model, "--data", folder, *extra, "--format", "tflite",
            "--variant", "float32,int8-full", "--out-dir", out,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        manifests[name] = load_manifest(out)
    for got, expected in zip(
        manifests["streamed"].artifacts, manifests["memory"].artifacts, strict=True
    ):
        assert got.test_accuracy == expected.test_accuracy and got.test_accuracy.images == 6
        assert got.parity == expected.parity


def test_stream_applies_to_folders_only(model, tmp_path):
    path = tmp_path / "cells.npz"
    np.savez(path, x=make_rgb_images(8, (12, 10)), y=make_labels(8, 3).astype(np.int64))
    result = run("evaluate", model, "--data", path, "--stream")
    assert result.exit_code == 1
    assert "error: --stream applies to a folder of images" in result.output
    result = run("evaluate", model, "--stream")
    assert "error: --stream applies to data: pass --data SPEC too" in result.output
