"""EMNIST folders: prefix detection, IDX and Kaggle CSV, upright images, mapping, bad folders.

The last tests read the real EMNIST-47 stand-in in ../shared/data/emnist47 and
prove that the loader returns images in MNIST (upright) orientation.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from harness.data import make_images, write_emnist_folder, write_idx_labels, write_mapping

from lowrank_edge.data.emnist import find_emnist_files, load_emnist, read_mapping
from lowrank_edge.errors import DataFormatError, LowrankEdgeError


@pytest.mark.parametrize(("kind", "gz"), [("idx", True), ("idx", False), ("csv", False)])
def test_folder_round_trip_upright(tmp_path, kind, gz):
    written = write_emnist_folder(tmp_path, prefix="emnist-balanced", kind=kind, gz=gz)
    raw = load_emnist(tmp_path)
    np.testing.assert_array_equal(raw.x_train, written.x_train)  # upright, not as stored
    np.testing.assert_array_equal(raw.x_test, written.x_test)
    np.testing.assert_array_equal(raw.y_train, written.y_train)
    np.testing.assert_array_equal(raw.y_test, written.y_test)
    assert raw.y_train.dtype == np.int64
    assert raw.labels == tuple(written.characters) and raw.num_classes == 6
    assert "emnist-balanced" in raw.source


def test_idx_preferred_when_csv_also_present(tmp_path):
    written = write_emnist_folder(tmp_path, prefix="p", kind="idx")
    (tmp_path / "p-train.csv").write_text("not,a,csv\n")
    (tmp_path / "p-test.csv").write_text("not,a,csv\n")
    assert find_emnist_files(tmp_path).kind == "idx"
    np.testing.assert_array_equal(load_emnist(tmp_path).x_test, written.x_test)


def test_read_mapping(tmp_path):
    path = write_mapping(tmp_path / "m.txt", "0AZab")
    assert read_mapping(path) == ("0", "A", "Z", "a", "b")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 48\n1 x\n", r"m\.txt: line 2: expected 'label ascii_code' \(two integers\)"),
        ("0 48\n2 50\n", r"m\.txt: labels must run 0\.\.1 without gaps; missing \[1\]"),
        ("0 48\n0 49\n", r"m\.txt: line 2: label 0 appears twice"),
        ("0 10\n", r"m\.txt: line 1: 10 is not a printable character code"),
        ("\n", r"m\.txt: the mapping file is empty"),
    ],
)
def test_bad_mapping(tmp_path, text, message):
    path = tmp_path / "m.txt"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=message):
        read_mapping(path)


def test_count_mismatch(tmp_path):
    write_emnist_folder(tmp_path, prefix="p", sizes=(30, 12))
    write_idx_labels(tmp_path / "p-test-labels-idx1-ubyte.gz", np.zeros(11, np.uint8))
    with pytest.raises(DataFormatError, match=r"p-test-images.*: 12 images but 11 labels"):
        load_emnist(tmp_path)


def test_label_outside_mapping_range(tmp_path):
    written = write_emnist_folder(tmp_path, prefix="p", characters="0123AB")
    labels = written.y_train.copy()
    labels[5] = 6
    write_idx_labels(tmp_path / "p-train-labels-idx1-ubyte.gz", labels)
    with pytest.raises(DataFormatError, match=r"label 6 at index 5 is outside 0\.\.5 \(6 classes"):
        load_emnist(tmp_path)


def test_csv_label_outside_range(tmp_path):
    write_emnist_folder(tmp_path, prefix="k", kind="csv", characters="01")
    write_mapping(tmp_path / "k-mapping.txt", "0")
    with pytest.raises(
        DataFormatError, match=r"k-train\.csv: label 1 at index 1 is outside 0\.\.0"
    ):
        load_emnist(tmp_path)


def test_two_prefixes_is_ambiguous(tmp_path):
    write_emnist_folder(tmp_path, prefix="emnist-balanced")
    write_emnist_folder(tmp_path, prefix="emnist-digits")
    with pytest.raises(
        LowrankEdgeError, match=r"several EMNIST splits found \(emnist-balanced, emnist-digits\)"
    ):
        find_emnist_files(tmp_path)
    assert find_emnist_files(tmp_path, prefix="emnist-digits").prefix == "emnist-digits"


def test_empty_folder_lists_expected_files(tmp_path):
    with pytest.raises(
        LowrankEdgeError, match=r"no EMNIST files found; expected <prefix>-train-images-idx3"
    ):
        find_emnist_files(tmp_path)


def test_not_a_folder(tmp_path):
    with pytest.raises(LowrankEdgeError, match=r"missing-dir: not a folder"):
        find_emnist_files(tmp_path / "missing-dir")


def test_incomplete_split_names_missing_files(tmp_path):
    write_emnist_folder(tmp_path, prefix="p")
    (tmp_path / "p-test-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(
        LowrankEdgeError,
        match=r"incomplete EMNIST split 'p': missing p-test-labels-idx1-ubyte\(\.gz\)$",
    ):
        find_emnist_files(tmp_path)


def test_missing_mapping(tmp_path):
    write_emnist_folder(tmp_path, prefix="p", kind="csv")
    (tmp_path / "p-mapping.txt").unlink()
    with pytest.raises(LowrankEdgeError, match=r"missing p-mapping\.txt"):
        find_emnist_files(tmp_path)


def test_corrupt_image_file_named(tmp_path):
    write_emnist_folder(tmp_path, prefix="p")
    (tmp_path / "p-train-images-idx3-ubyte.gz").write_bytes(make_images(1).tobytes())
    with pytest.raises(
        DataFormatError, match=r"p-train-images-idx3-ubyte\.gz: expected IDX3 magic"
    ):
        load_emnist(tmp_path)


# --- the real EMNIST-47 stand-in -------------------------------------------------------------


def shared_emnist47() -> Path:
    """../shared/data/emnist47 beside the repo, or $LOWRANK_EDGE_SHARED_DATA/emnist47."""
    base = os.environ.get("LOWRANK_EDGE_SHARED_DATA")
    root = Path(base) if base else Path(__file__).resolve().parents[2] / "shared" / "data"
    folder = root / "emnist47"
    if not folder.is_dir():
        pytest.fail(
            f"the shared EMNIST-47 folder is missing: {folder} (set LOWRANK_EDGE_SHARED_DATA "
            "to the folder holding emnist47/)"
        )
    return folder


@pytest.fixture(scope="module")
def emnist47():
    return load_emnist(shared_emnist47())


def _class_means(images: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    flat = images.reshape(len(images), -1).astype(np.float32) / 255.0
    return np.stack([flat[labels == c].mean(axis=0) for c in range(num_classes)])


def _nearest_mean_accuracy(means: np.ndarray, images: np.ndarray, labels: np.ndarray) -> float:
    flat = images.reshape(len(images), -1).astype(np.float32) / 255.0
    dist = (flat**2).sum(1)[:, None] - 2 * flat @ means.T + (means**2).sum(1)[None, :]
    return float((dist.argmin(axis=1) == labels).mean())


def test_emnist47_loads_with_expected_layout(emnist47):
    assert emnist47.num_classes == 47
    assert "".join(emnist47.labels) == "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghnqrt"
    assert emnist47.x_train.shape[1:] == (28, 28) and emnist47.x_train.dtype == np.uint8
    assert len(emnist47.x_train) == len(emnist47.y_train) > 100_000
    assert set(np.unique(emnist47.y_test)) == set(range(47))


def test_emnist47_train_and_test_share_one_orientation(emnist47):
    # Nearest-class-mean on 10k upright train images: measured 0.51 on upright test
    # images, 0.06 on transposed ones (chance is 1/47 = 0.02).
    means = _class_means(emnist47.x_train[:10_000], emnist47.y_train[:10_000], 47)
    upright = _nearest_mean_accuracy(means, emnist47.x_test, emnist47.y_test)
    transposed = _nearest_mean_accuracy(means, emnist47.x_test.transpose(0, 2, 1), emnist47.y_test)
    assert upright > 0.40
    assert upright - transposed > 0.30


def test_emnist47_images_are_upright(emnist47):
    # Upright means MNIST orientation: '1' is tall and narrow, '7' and 'T' carry their
    # bar at the top. Measured on the test split: '1' row/column spread 37/10,
    # ink in the top half 0.66 for '7' and 0.72 for 'T' (transposed or flipped: < 0.5).
    rows = np.arange(28, dtype=np.float64)[:, None] * np.ones((1, 28))
    cols = rows.T

    def mean_image(char: str) -> np.ndarray:
        image = emnist47.x_test[emnist47.y_test == emnist47.labels.index(char)].mean(axis=0)
        return image / image.sum()

    one = mean_image("1")
    row_spread = (one * (rows - (one * rows).sum()) ** 2).sum()
    col_spread = (one * (cols - (one * cols).sum()) ** 2).sum()
    assert row_spread > 2.0 * col_spread
    for char in "7T":
        assert mean_image(char)[:14].sum() > 0.58, char
