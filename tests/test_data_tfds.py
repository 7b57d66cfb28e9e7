"""`tfds:NAME[:SPLIT]` through tensorflow-datasets' mock data (nothing is ever downloaded)."""

import sys

import numpy as np
import pytest

from lowrank_edge.data import load_data, spec_name
from lowrank_edge.errors import LowrankEdgeError, MissingDependencyError


def quiet(_message: str) -> None:
    pass


def test_without_tensorflow_datasets_one_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import now fails
    with pytest.raises(MissingDependencyError, match=r"pip install 'lowrank-edge\[tfds\]'"):
        load_data("tfds:mnist", log=quiet)


def test_spec_names_and_a_bad_spec():
    assert spec_name("tfds:mnist") == "mnist"
    assert spec_name("tfds:cifar10/3.0.2:train[:10%]") == "cifar10_3.0.2"
    with pytest.raises(LowrankEdgeError, match="expected tfds:NAME or tfds:NAME:SPLIT"):
        load_data("tfds:", log=quiet)


@pytest.fixture
def tfds():
    return pytest.importorskip("tensorflow_datasets")


def test_train_and_test_splits_as_bytes(tfds):
    with tfds.testing.mock_data(num_examples=30):
        ds = load_data("tfds:mnist", log=quiet)
    assert (ds.name, ds.num_classes, ds.preprocessing) == ("mnist", 10, "byte")
    assert ds.x_train.shape[1:] == (28, 28, 1) and ds.x_train.dtype == np.float32
    assert (len(ds.x_train) + len(ds.x_val), len(ds.x_test)) == (30, 30)
    assert 0.0 <= ds.x_test.min() and ds.x_test.max() <= 255.0
    assert np.array_equal(ds.x_test, np.round(ds.x_test))  # whole pixel values


def test_one_split_is_divided_by_class_fitted_and_capped(tfds):
    with tfds.testing.mock_data(num_examples=60):
        ds = load_data(
            "tfds:mnist:train",
            image_shape=(16, 12, 3),
            preprocessing="unit",
            max_images=3,
            log=quiet,
        )
    assert ds.x_train.shape[1:] == (16, 12, 3) and ds.input_range == (0.0, 1.0)
    counts = np.bincount(np.concatenate([ds.y_train, ds.y_val, ds.y_test]), minlength=10)
    assert counts.max() <= 3 and len(ds.x_test) > 0


def test_data_missing_from_the_data_dir_is_a_clear_error(tfds, tmp_path):
    with pytest.raises(LowrankEdgeError, match="tfds:mnist: cannot read split 'train'.*never"):
        load_data("tfds:mnist", data_dir=tmp_path, log=quiet)
