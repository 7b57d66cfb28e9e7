"""Saving and loading .keras files: safe loading, atomic writes, inference-only content."""

import zipfile

import numpy as np
import pytest
from harness.data import make_pattern_dataset

from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.model.resnet import ResNetConfig, build_mini_resnet
from lowrank_edge.model.saving import load_model, save_model
from lowrank_edge.model.train import FitConfig, fit

TINY = ResNetConfig(num_classes=3, widths=(4, 8), blocks_per_stage=1, head_units=8)


@pytest.fixture(scope="module")
def trained():
    model = build_mini_resnet(TINY)
    fit(
        model,
        make_pattern_dataset(num_classes=3, n_train=64, n_val=16, n_test=32),
        FitConfig(epochs=1, batch_size=16, verbose=0),
    )
    return model


def test_save_drops_optimizer_state_and_round_trips(trained, tmp_path):
    path = save_model(trained, tmp_path / "m.keras")
    names = zipfile.ZipFile(path).namelist()
    weights = zipfile.ZipFile(path).read("model.weights.h5")
    assert "model.weights.h5" in names
    assert b"optimizer" not in weights  # Adam's moments are not saved
    reloaded = load_model(path)
    x = make_pattern_dataset(num_classes=3, n_train=64, n_val=16, n_test=32).x_test[:4]
    np.testing.assert_array_equal(trained.predict(x, verbose=0), reloaded.predict(x, verbose=0))


def test_save_refuses_to_replace_and_leaves_no_temp_file(trained, tmp_path):
    path = tmp_path / "m.keras"
    path.write_bytes(b"keep me")
    with pytest.raises(LowrankEdgeError, match="already exists"):
        save_model(trained, path)
    assert path.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]


@pytest.mark.parametrize(
    "content, message",
    [(None, "model file not found"), (b"not a zip", "not a Keras v3 .keras archive")],
)
def test_load_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "broken.keras"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(LowrankEdgeError, match=message) as info:
        load_model(path)
    assert "broken.keras" in str(info.value)


def test_load_truncated_archive_is_one_clear_error(trained, tmp_path):
    good = save_model(trained, tmp_path / "good.keras")
    bad = tmp_path / "bad.keras"
    data = good.read_bytes()
    with zipfile.ZipFile(bad, "w") as archive:  # a valid zip missing the weights
        archive.writestr("config.json", zipfile.ZipFile(good).read("config.json"))
    assert len(data) > 0
    with pytest.raises(LowrankEdgeError, match="bad.keras: could not load the model"):
        load_model(bad)
