"""Model/data agreement: image shape and class count are checked in every command that has both
(one error naming the model file and the data), and `train`/`pipeline` without --base build
the reference network for the data's image shape and class count."""

from __future__ import annotations

import pytest
from harness.applications import tiny_rgb_dataset
from harness.cli import run_cli, write_mnist_folder
from harness.models import build_raw_ops_model

from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.export import export_model
from lowrank_edge.model.agreement import check_model_data, check_model_fits_data
from lowrank_edge.model.resnet import ResNetConfig, build_mini_resnet, config_for_data
from lowrank_edge.model.saving import load_model
from lowrank_edge.model.train import FitConfig
from lowrank_edge.pipeline.run import CompressOptions, PipelineConfig, run_pipeline

RGB = tiny_rgb_dataset(shape=(32, 32, 3), num_classes=3, counts=(48, 16, 16))


def test_agreeing_shapes_pass_and_free_sizes_match_any():
    check_model_data("m.keras", (32, 32, 3), 3, RGB)
    check_model_data("m.keras", (None, None, 3), 3, RGB)


def test_a_shape_mismatch_names_both_sides():
    with pytest.raises(LowrankEdgeError) as error:
        check_model_data("models/m.keras", (28, 28, 1), 3, RGB)
    assert str(error.value) == (
        "model models/m.keras takes inputs of shape 28x28x1 but data tiny-rgb "
        "(tests/harness/applications.py) has images of shape 32x32x3"
    )


def test_a_class_mismatch_names_both_sides():
    model = build_raw_ops_model((32, 32, 3), num_classes=5)
    with pytest.raises(LowrankEdgeError) as error:
        check_model_fits_data(model, RGB, "mine.keras")
    assert str(error.value) == (
        "model mine.keras outputs 5 classes but data tiny-rgb "
        "(tests/harness/applications.py) has 3 classes"
    )


@pytest.fixture(scope="module")
def wrong_classes(tmp_path_factory):
    """A 28x28x1 model with 5 classes next to a 10-class MNIST folder."""
    folder = tmp_path_factory.mktemp("agreement")
    write_mnist_folder(folder / "mnist")
    build_raw_ops_model((28, 28, 1), num_classes=5).save(folder / "five.keras")
    return folder


@pytest.mark.parametrize(
    "command",
    [
        ["evaluate"],
        ["ranks", "--target-macs", "0.5"],
        ["compress", "--target-macs", "0.5", "--finetune-epochs", "0"],
        ["export", "--format", "tflite"],
    ],
)
def test_every_command_with_model_and_data_refuses_a_mismatch(wrong_classes, command):
    model = wrong_classes / "five.keras"
    out = ["--out-dir", wrong_classes / "never"] if command[0] == "export" else []
    result = run_cli(command[0], model, *command[1:], "--dataset", "mnist",
                     "--data-dir", wrong_classes / "mnist", *out)  # fmt: skip
    assert result.exit_code == 1, result.output
    assert f"error: model {model} outputs 5 classes but data mnist" in result.output
    assert "has 10 classes" in result.output
    assert not (wrong_classes / "never").exists()


def test_export_refuses_a_dataset_of_another_shape(tmp_path):
    path = tmp_path / "gray.keras"
    build_raw_ops_model((28, 28, 1), num_classes=3).save(path)
    with pytest.raises(LowrankEdgeError, match=r"takes inputs of shape 28x28x1 but data tiny-rgb"):
        export_model(path, tmp_path / "out", formats=("tflite",), dataset=RGB)


def test_reference_config_follows_the_data():
    config = config_for_data(ResNetConfig(), RGB)
    assert config.input_shape == (32, 32, 3) and config.num_classes == 3
    assert build_mini_resnet(config).input_shape == (None, 32, 32, 3)


def test_pipeline_without_base_trains_for_rgb_images(tmp_path):
    config = PipelineConfig(
        dataset="tiny-rgb",
        out_dir=tmp_path,
        target_macs=(),
        model=ResNetConfig(widths=(4, 8), blocks_per_stage=1, head_units=8),
        train=FitConfig(epochs=1, batch_size=16, verbose=0),
        finetune=FitConfig(epochs=1, batch_size=16, verbose=0),
        compress=CompressOptions(fraction=0.5, factoriser="svd"),
    )
    records = run_pipeline(config, data=RGB, log=lambda message: None)
    base = load_model(tmp_path / "base.keras")
    assert base.input_shape == (None, 32, 32, 3) and base.output_shape == (None, 3)
    assert [r["name"] for r in records] == ["base", "f0.5"]
    assert records[1]["finetune"]["from_logits"] is True  # the reference head gives logits
