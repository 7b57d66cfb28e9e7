"""`load_dataset` (names, folders, splits), the `lowrank-edge data` command, and no-TF imports."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from harness.data import (
    make_images,
    make_labels,
    write_csv,
    write_emnist_folder,
    write_idx_images,
    write_idx_labels,
)

from lowrank_edge.cli import main
from lowrank_edge.data import load_dataset
from lowrank_edge.data.mnist import write_mnist_npz
from lowrank_edge.data.mnist_folder import KAGGLE_TEST_FRACTION
from lowrank_edge.data.raw import RawSplits
from lowrank_edge.errors import LowrankEdgeError


def quiet(_message: str) -> None:
    """A log sink for tests."""


def write_mnist_idx(folder, n_train=20, n_test=7, gz=True):
    x_train, y_train = make_images(n_train, 1), make_labels(n_train, 10, 1)
    x_test, y_test = make_images(n_test, 2), make_labels(n_test, 10, 2)
    suffix = ".gz" if gz else ""
    write_idx_images(folder / f"train-images-idx3-ubyte{suffix}", x_train, gz)
    write_idx_labels(folder / f"train-labels-idx1-ubyte{suffix}", y_train, gz)
    write_idx_images(folder / f"t10k-images-idx3-ubyte{suffix}", x_test, gz)
    write_idx_labels(folder / f"t10k-labels-idx1-ubyte{suffix}", y_test, gz)
    return x_train, y_train, x_test, y_test


def _sorted_rows(x: np.ndarray) -> np.ndarray:
    flat = x.reshape(len(x), -1)
    return flat[np.lexsort(flat.T[::-1])]


def test_emnist_dataset_is_float_upright_and_split_80_20(tmp_path):
    written = write_emnist_folder(tmp_path, sizes=(30, 12))
    ds = load_dataset("emnist", tmp_path, seed=3, log=quiet)
    assert ds.name == "emnist" and ds.num_classes == 6 and ds.labels == tuple("0123AB")
    assert ds.x_train.shape == (24, 28, 28, 1) and ds.x_val.shape == (6, 28, 28, 1)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    np.testing.assert_allclose(ds.x_test[..., 0] * 255.0, written.x_test, atol=1e-4)
    # train + val are exactly the written training images (upright), in some order
    pool = np.concatenate([ds.x_train, ds.x_val])[..., 0] * 255.0
    np.testing.assert_allclose(_sorted_rows(pool), _sorted_rows(written.x_train), atol=1e-4)


def test_split_depends_on_seed_only(tmp_path):
    write_emnist_folder(tmp_path)
    a, b = (load_dataset("emnist", tmp_path, seed=s, log=quiet) for s in (0, 0))
    c = load_dataset("emnist", tmp_path, seed=1, log=quiet)
    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.x_val, c.x_val)


def test_emnist_needs_a_folder(monkeypatch):
    monkeypatch.delenv("LOWRANK_EDGE_EMNIST_DIR", raising=False)
    with pytest.raises(LowrankEdgeError, match=r"emnist needs its files: pass --data-dir DIR"):
        load_dataset("emnist", log=quiet)


def test_emnist_folder_from_env(tmp_path, monkeypatch):
    write_emnist_folder(tmp_path)
    monkeypatch.setenv("LOWRANK_EDGE_EMNIST_DIR", str(tmp_path))
    assert load_dataset("emnist", log=quiet).num_classes == 6


def test_unknown_name_lists_known_names():
    with pytest.raises(LowrankEdgeError, match=r"unknown dataset 'cifar'; known: mnist, emnist"):
        load_dataset("cifar", log=quiet)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_folder_is_not_transposed(tmp_path, gz):
    x_train, y_train, x_test, y_test = write_mnist_idx(tmp_path, gz=gz)
    ds = load_dataset("mnist", tmp_path, log=quiet)
    np.testing.assert_allclose(ds.x_test[..., 0] * 255.0, x_test, atol=1e-4)
    np.testing.assert_array_equal(ds.y_test, y_test)
    assert len(ds.x_train) + len(ds.x_val) == 20 and ds.num_classes == 10


def test_mnist_idx_label_out_of_range(tmp_path):
    write_mnist_idx(tmp_path)
    write_idx_labels(tmp_path / "t10k-labels-idx1-ubyte.gz", np.full(7, 12, np.uint8))
    with pytest.raises(
        LowrankEdgeError, match=r"t10k-labels.*label 12 at index 0 is outside 0\.\.9"
    ):
        load_dataset("mnist", tmp_path, log=quiet)


def test_kaggle_train_csv_holds_out_a_fixed_test_split(tmp_path):
    images, labels = make_images(70, 4), make_labels(70, 10, 4)
    write_csv(tmp_path / "train.csv", images, labels, header=True)
    runs = [load_dataset("mnist", tmp_path, seed=s, log=quiet) for s in (0, 1)]
    n_test = round(70 * KAGGLE_TEST_FRACTION)
    assert all(len(ds.x_test) == n_test for ds in runs)
    np.testing.assert_array_equal(runs[0].x_test, runs[1].x_test)  # test set ignores the seed
    assert not np.array_equal(runs[0].x_val, runs[1].x_val)
    every = np.concatenate([runs[0].x_train, runs[0].x_val, runs[0].x_test])[..., 0] * 255.0
    np.testing.assert_allclose(_sorted_rows(every), _sorted_rows(images), atol=1e-4)


def test_mnist_folder_without_files(tmp_path):
    with pytest.raises(
        LowrankEdgeError, match=r"no MNIST files found .*or Kaggle digit-recognizer"
    ):
        load_dataset("mnist", tmp_path, log=quiet)


def test_mnist_default_reads_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LOWRANK_EDGE_CACHE", str(tmp_path))
    x, y = make_images(10), make_labels(10, 10).astype(np.int64)
    write_mnist_npz(tmp_path / "mnist.npz", RawSplits(x, y, x[:4], y[:4], 10, (), ""))
    ds = load_dataset("mnist", log=quiet)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (8, 2, 4)
    assert ds.labels == tuple("0123456789") and ds.source == str(tmp_path / "mnist.npz")


def test_cli_data_prints_splits_and_classes(tmp_path):
    write_emnist_folder(tmp_path, sizes=(30, 12))
    result = CliRunner().invoke(main, ["data", "emnist", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "6 classes" in result.output and str(tmp_path) in result.output
    for line in ("train x=(24, 28, 28, 1)", "val   x=(6, 28, 28, 1)", "test  x=(12, 28, 28, 1)"):
        assert line in result.output


def test_cli_data_error_is_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("LOWRANK_EDGE_EMNIST_DIR", raising=False)
    result = CliRunner().invoke(main, ["data", "emnist"])
    assert result.exit_code == 1
    assert "error: emnist needs its files: pass --data-dir DIR" in result.output
    assert "Traceback" not in result.output


def test_data_modules_do_not_import_tensorflow():
    code = (
        "import sys, lowrank_edge.data, lowrank_edge.cli.data_cmd, lowrank_edge.data.mnist\n"
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
