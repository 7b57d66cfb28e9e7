"""IDX reader: round trips (gzip detected by content) and every bad-file error."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from harness.data import (
    IDX1,
    IDX3,
    idx_bytes,
    make_images,
    write_bytes,
    write_idx_images,
    write_idx_labels,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from lowrank_edge.data.idx import read_idx_images, read_idx_labels
from lowrank_edge.errors import DataFormatError


@pytest.mark.parametrize("gz", [True, False])
def test_round_trip_images_and_labels(tmp_path, gz):
    images = make_images(5)
    labels = np.array([0, 3, 255, 7, 1], dtype=np.uint8)
    img_path = write_idx_images(tmp_path / "x", images, gz=gz)
    lbl_path = write_idx_labels(tmp_path / "y", labels, gz=gz)
    got = read_idx_images(img_path)
    assert got.dtype == np.uint8 and got.shape == (5, 28, 28)
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(read_idx_labels(lbl_path), labels)


@settings(max_examples=15, deadline=None)
@given(count=st.integers(0, 4), seed=st.integers(0, 1000), gz=st.booleans())
def test_round_trip_property(tmp_path_factory, count, seed, gz):
    folder = tmp_path_factory.mktemp("idx")
    images = make_images(count, seed)
    np.testing.assert_array_equal(
        read_idx_images(write_idx_images(folder / "i", images, gz)), images
    )


def test_gzip_detected_by_magic_not_name(tmp_path):
    images = make_images(2)
    plain_named_gz = write_idx_images(tmp_path / "plain.gz", images, gz=False)
    gz_named_plain = write_idx_images(tmp_path / "compressed-ubyte", images, gz=True)
    assert gz_named_plain.read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(read_idx_images(plain_named_gz), images)
    np.testing.assert_array_equal(read_idx_images(gz_named_plain), images)


def test_labels_file_read_as_images_names_both_magics(tmp_path):
    path = write_idx_labels(tmp_path / "x.gz", np.zeros(3, np.uint8))
    with pytest.raises(
        DataFormatError, match=r"x\.gz: expected IDX3 magic 0x00000803, got 0x00000801"
    ):
        read_idx_images(path)


def test_images_file_read_as_labels(tmp_path):
    path = write_idx_images(tmp_path / "imgs", make_images(1), gz=False)
    with pytest.raises(
        DataFormatError, match=r"imgs: expected IDX1 magic 0x00000801, got 0x00000803"
    ):
        read_idx_labels(path)


def test_wrong_image_size(tmp_path):
    path = write_bytes(tmp_path / "x", idx_bytes(IDX3, (2, 28, 27), bytes(2 * 28 * 27)), gz=True)
    with pytest.raises(DataFormatError, match=r"expected 28x28 images, header says 28x27"):
        read_idx_images(path)


@pytest.mark.parametrize("gz", [True, False])
def test_truncated_payload(tmp_path, gz):
    path = write_bytes(tmp_path / "x", idx_bytes(IDX3, (3, 28, 28), bytes(2 * 784 + 5)), gz=gz)
    with pytest.raises(
        DataFormatError, match=r"x: truncated: header promises 3x28x28 = 2352 bytes"
    ):
        read_idx_images(path)


def test_truncated_header(tmp_path):
    path = write_bytes(tmp_path / "y", idx_bytes(IDX1, (), b""), gz=False)
    with pytest.raises(
        DataFormatError, match=r"y: truncated IDX header: 4 bytes, expected at least 8"
    ):
        read_idx_labels(path)


def test_trailing_garbage(tmp_path):
    path = write_bytes(tmp_path / "y", idx_bytes(IDX1, (3,), b"\x01\x02\x03junk"), gz=True)
    with pytest.raises(DataFormatError, match=r"y: 4 unexpected trailing bytes"):
        read_idx_labels(path)


def test_corrupt_gzip(tmp_path):
    data = gzip.compress(idx_bytes(IDX1, (3,), b"\x01\x02\x03"))
    path = tmp_path / "y.gz"
    path.write_bytes(data[:-6])  # cut into the gzip trailer
    with pytest.raises(DataFormatError, match=r"y\.gz: corrupt gzip data"):
        read_idx_labels(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataFormatError, match=r"nope: cannot read"):
        read_idx_labels(tmp_path / "nope")
