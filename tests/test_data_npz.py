"""An .npz file as data: both layouts, uint8 and float images, fitting, and every refusal."""

import numpy as np
import pytest
from harness.data import make_labels, make_rgb_images

from lowrank_edge.data import load_data, spec_name
from lowrank_edge.errors import DataFormatError, LowrankEdgeError


def quiet(_message: str) -> None:
    pass


def write_npz(path, **arrays):
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    return str(path)


def splits(count=20, classes=3, size=(8, 6), seed=0):
    return make_rgb_images(count, size, seed), make_labels(count, classes, seed).astype(np.int64)


def test_four_arrays_are_the_splits_uint8_as_bytes(tmp_path):
    (x, y), (xt, yt) = splits(20), splits(6, seed=4)
    spec = write_npz(tmp_path / "cells.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
    ds = load_data(spec, log=quiet)
    assert (ds.name, ds.num_classes, ds.labels) == ("cells", 3, ("0", "1", "2"))
    assert spec_name(spec) == "cells"
    assert (ds.preprocessing, ds.input_range) == ("byte", (0.0, 255.0))
    np.testing.assert_array_equal(ds.x_test, xt.astype(np.float32))
    np.testing.assert_array_equal(ds.y_test, yt)
    assert len(ds.x_train) + len(ds.x_val) == 20 and len(ds.x_val) == 4


def test_x_y_is_split_by_class_and_class_names_name_the_classes(tmp_path):
    x, y = splits(30)
    grey = x[..., 0]  # (N, H, W): one channel
    names = np.array(["red", "green", "blue"])
    spec = write_npz(tmp_path / "d.npz", x=grey, y=y, class_names=names)
    ds = load_data(spec, log=quiet)
    assert ds.labels == ("red", "green", "blue")
    assert ds.x_train.shape[1:] == (8, 6, 1)
    assert sorted(np.unique(ds.y_test).tolist()) == [0, 1, 2]
    assert len(ds.x_test) == sum(round(c * 0.2) for c in np.bincount(y))


def test_float_images_pass_unchanged_with_their_observed_range(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 5, 5, 3)).astype(np.float32)
    y = make_labels(20, 2).astype(np.int64)
    ds = load_data(write_npz(tmp_path / "f.npz", x=x, y=y), log=quiet)
    assert ds.preprocessing == "none"
    everything = np.concatenate([ds.x_train, ds.x_val, ds.x_test])
    assert ds.input_range == (float(everything.min()), float(everything.max()))
    assert sorted(everything.sum(axis=(1, 2, 3)).tolist()) == pytest.approx(
        sorted(x.sum(axis=(1, 2, 3)).tolist()), abs=1e-5
    )


def test_images_are_fitted_to_the_model_input_and_capped_per_class(tmp_path):
    x, y = splits(30, size=(16, 16))
    spec = write_npz(tmp_path / "d.npz", x=x, y=y)
    ds = load_data(spec, image_shape=(8, 8, 1), preprocessing="unit", max_images=4, log=quiet)
    assert ds.x_train.shape[1:] == (8, 8, 1) and ds.input_range == (0.0, 1.0)
    everything = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    assert np.bincount(everything).tolist() == [4, 4, 4]


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"images": np.zeros((2, 4, 4), np.uint8)}, "expected arrays x_train, .* or x, y; found"),
        (
            {"x": np.zeros((4, 4, 4), np.int32), "y": np.zeros(4, np.int64)},
            "x must be uint8 .* int32",
        ),
        ({"x": np.zeros((4, 16), np.uint8), "y": np.zeros(4, np.int64)}, r"shape \(N, H, W\)"),
        ({"x": np.zeros((4, 4, 4, 7), np.uint8), "y": np.zeros(4)}, "C from 1 to 4"),
        ({"x": np.zeros((4, 4, 4), np.uint8), "y": np.zeros(4)}, "y must be integer class labels"),
        ({"x": np.zeros((4, 4, 4), np.uint8), "y": np.zeros((4, 1), int)}, r"shape \(N,\)"),
        (
            {"x": np.full((4, 4, 4), np.nan, np.float32), "y": np.arange(4) % 2},
            "NaN or infinite",
        ),
        (
            {
                "x": np.zeros((6, 4, 4), np.uint8),
                "y": np.array([0, 1, 0, 1, 5, 1]),
                "class_names": np.array(["a", "b", "c"]),
            },
            "label 5 at index .* outside 0..2",
        ),
        (
            {"x": np.zeros((4, 4, 4), np.uint8), "y": np.array([0, 1, -1, 1])},
            "label -1 at index .* outside",
        ),
        (
            {
                "x_train": np.zeros((4, 4, 4), np.uint8),
                "y_train": np.arange(4) % 2,
                "x_test": np.zeros((2, 5, 4), np.uint8),
                "y_test": np.arange(2),
            },
            "both splits must agree",
        ),
        ({"x": np.zeros((4, 4, 4), np.uint8), "y": np.zeros(4, int)}, "at least two classes"),
        (
            {"x": np.zeros((4, 4, 4), np.uint8), "y": np.array([0, 1, 2, 10**9])},
            "implies 1,000,000,001 classes",
        ),
    ],
    ids=[
        "missing-keys",
        "int32-x",
        "rank-2",
        "seven-channels",
        "float-labels",
        "2d-labels",
        "nan",
        "label-too-big",
        "negative-label",
        "splits-disagree",
        "one-class",
        "huge-label",
    ],
)
def test_bad_npz_files_are_refused_naming_the_file(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    spec = write_npz(path, **arrays)
    with pytest.raises(DataFormatError, match=message) as caught:
        load_data(spec, log=quiet)
    assert str(path) in str(caught.value)


def test_not_an_npz_and_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"PK not really a zip")
    with pytest.raises(DataFormatError, match="junk.npz: not a readable .npz"):
        load_data(str(path), log=quiet)
    objects = np.empty(4, dtype=object)
    spec = write_npz(tmp_path / "obj.npz", x=np.zeros((4, 2, 2), np.uint8), y=objects)
    with pytest.raises(DataFormatError, match="obj.npz"):
        load_data(spec, log=quiet)


def test_an_npz_larger_than_the_bound_is_refused_before_loading(tmp_path):
    x, y = splits(40)
    spec = write_npz(tmp_path / "big.npz", x=x, y=y)
    with pytest.raises(DataFormatError, match="big.npz: unpacks to more than 1,000 bytes"):
        load_data(spec, max_bytes=1000, log=quiet)


def test_data_dir_is_refused_for_a_path_spec(tmp_path):
    x, y = splits(10)
    spec = write_npz(tmp_path / "d.npz", x=x, y=y)
    with pytest.raises(LowrankEdgeError, match="--data-dir applies to mnist, emnist and tfds"):
        load_data(spec, data_dir=tmp_path, log=quiet)
