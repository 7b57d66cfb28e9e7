"""Label-then-pixels CSV reader: round trips with/without header and per-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from harness.data import csv_text, make_images, make_labels, write_csv

from lowrank_edge.data.csv_files import read_label_pixel_csv
from lowrank_edge.errors import DataFormatError


@pytest.mark.parametrize("header", [True, False])
def test_round_trip(tmp_path, header):
    images, labels = make_images(9), make_labels(9, 10)
    got_images, got_labels = read_label_pixel_csv(
        write_csv(tmp_path / "t.csv", images, labels, header)
    )
    assert got_images.dtype == np.uint8 and got_labels.dtype == np.int64
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_single_row_without_header(tmp_path):
    images, labels = make_images(1), np.array([4])
    got_images, got_labels = read_label_pixel_csv(
        write_csv(tmp_path / "a.csv", images, labels, False)
    )
    assert got_images.shape == (1, 28, 28) and got_labels.tolist() == [4]


def _lines(count: int = 8, header: bool = False) -> list[str]:
    return csv_text(make_images(count), make_labels(count, 10), header).splitlines()


def _write(tmp_path, lines):
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_wrong_column_count_names_line(tmp_path):
    lines = _lines()
    lines[6] = lines[6].rsplit(",", 1)[0]  # 1-based line 7 loses its last pixel
    with pytest.raises(DataFormatError, match=r"bad\.csv: line 7: expected 785 columns, got 784"):
        read_label_pixel_csv(_write(tmp_path, lines))


def test_line_numbers_count_the_header(tmp_path):
    lines = _lines(header=True)
    lines[2] += ",0"
    with pytest.raises(DataFormatError, match=r"line 3: expected 785 columns, got 786"):
        read_label_pixel_csv(_write(tmp_path, lines))


def test_non_numeric_cell_names_column(tmp_path):
    lines = _lines(header=True)
    cells = lines[3].split(",")
    cells[11] = "x7"  # column 12 = pixel10
    lines[3] = ",".join(cells)
    with pytest.raises(
        DataFormatError, match=r"line 4, column 12 \(pixel10\): expected an integer, got 'x7'"
    ):
        read_label_pixel_csv(_write(tmp_path, lines))


@pytest.mark.parametrize("value", ["256", "-1"])
def test_pixel_out_of_range(tmp_path, value):
    lines = _lines()
    cells = lines[1].split(",")
    cells[785 - 1] = value
    lines[1] = ",".join(cells)
    with pytest.raises(
        DataFormatError,
        match=rf"line 2, column 785 \(pixel783\): pixel must be in 0\.\.255, got {value}",
    ):
        read_label_pixel_csv(_write(tmp_path, lines))


def test_negative_label(tmp_path):
    lines = _lines()
    lines[4] = "-3" + lines[4][lines[4].index(",") :]
    with pytest.raises(DataFormatError, match=r"line 5, column 1 \(label\): label must be"):
        read_label_pixel_csv(_write(tmp_path, lines))


def test_float_pixel_refused(tmp_path):
    lines = _lines()
    lines[0] = lines[0].replace(",", ",0.5,", 1).rsplit(",", 1)[0]
    with pytest.raises(DataFormatError, match=r"line 1, column 2 \(pixel0\): expected an integer"):
        read_label_pixel_csv(_write(tmp_path, lines))


def test_header_with_wrong_width(tmp_path):
    lines = _lines(header=True)
    lines[0] = "label,pixel0"
    with pytest.raises(DataFormatError, match=r"line 1 \(header\): expected 785 columns, got 2"):
        read_label_pixel_csv(_write(tmp_path, lines))


@pytest.mark.parametrize("content", ["", "label," + ",".join(f"pixel{i}" for i in range(784))])
def test_no_data_rows(tmp_path, content):
    path = tmp_path / "empty.csv"
    path.write_text(content + "\n" if content else "")
    with pytest.raises(DataFormatError, match=r"empty\.csv: no data rows"):
        read_label_pixel_csv(path)


def test_binary_file_refused(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(b"\x1f\x8b\x08\x00\xff\xfe")
    with pytest.raises(DataFormatError, match=r"x\.csv: not a UTF-8 text CSV file"):
        read_label_pixel_csv(path)


@pytest.mark.parametrize(
    "cell, shown",
    [
        ("\U0006ec25]\x97\xd3", r"'\\U0006ec25\]\\x97Ó'"),  # made numpy's parser segfault
        ("\u0663", r"'٣'"),  # an Arabic-Indic digit: Python's int() takes it, a CSV must not
        ("1_0", r"'1_0'"),  # so does int(), with the underscore
    ],
)
def test_non_ascii_or_python_only_integers_name_the_cell(tmp_path, cell, shown):
    lines = _lines(3, header=True)
    cells = lines[2].split(",")
    cells[23] = cell
    lines[2] = ",".join(cells)
    path = _write(tmp_path, lines)
    with pytest.raises(
        DataFormatError,
        match=rf"bad\.csv: line 3, column 24 \(pixel22\): expected an integer, got {shown}",
    ):
        read_label_pixel_csv(path)


def test_header_with_byte_order_mark_is_accepted(tmp_path):
    images, labels = make_images(2), make_labels(2, 10)
    path = tmp_path / "excel.csv"
    path.write_text(csv_text(images, labels, header=True), encoding="utf-8-sig")
    got_images, got_labels = read_label_pixel_csv(path)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
