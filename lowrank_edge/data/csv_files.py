"""Read label-then-784-pixels CSV files (Kaggle digit-recognizer and Kaggle EMNIST).

The header row is optional: it is recognised by a non-integer first cell
(`label,pixel0,...`). The fast path is numpy's C parser; when it refuses the
file, a line-by-line pass finds the first bad line and names it (1-based).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np

from lowrank_edge.errors import DataFormatError

PIXELS = 28 * 28
COLUMNS = 1 + PIXELS
_INTEGER = re.compile(r"[+-]?[0-9]+")


def _column_name(index: int) -> str:
    """Display name of a 0-based column: `label` or `pixelK` (Kaggle's header names)."""
    return "label" if index == 0 else f"pixel{index - 1}"


def _is_int(cell: str) -> bool:
    """An optionally signed run of ASCII digits (Python's int() also takes '1_0' and '٣')."""
    return _INTEGER.fullmatch(cell) is not None


def read_label_pixel_csv(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read `label,p0..p783` rows; return images uint8 (N, 28, 28) as stored and labels int64.

    Labels are only checked to be non-negative integers here; the class range is
    checked by the caller, which knows the class count.
    """
    path = Path(path)
    first_line = _first_line(path)
    has_header = bool(first_line) and not _is_int(first_line.split(",")[0])
    if has_header and len(first_line.split(",")) != COLUMNS:
        raise DataFormatError(
            f"{path}: line 1 (header): expected {COLUMNS} columns, got {len(first_line.split(','))}"
        )
    if not _is_ascii_file(path):
        # numpy's parser can crash (segfault) on some non-ASCII cells, and integer CSVs
        # are ASCII: name the first bad line without handing the file to numpy.
        _raise_first_bad_line(path, has_header)
        raise DataFormatError(f"{path}: non-ASCII characters in a CSV file of integers")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
            table = np.loadtxt(
                path,
                delimiter=",",
                dtype=np.int32,
                skiprows=int(has_header),
                ndmin=2,
                encoding="utf-8",
            )
    except (ValueError, OverflowError, UnicodeDecodeError):
        table = None
    if table is not None and table.size == 0:
        raise DataFormatError(f"{path}: no data rows")
    if table is None or table.shape[1:] != (COLUMNS,) or _out_of_range(table):
        _raise_first_bad_line(path, has_header)
        raise DataFormatError(f"{path}: not a label,pixel0..pixel783 CSV file of integers")
    images = table[:, 1:].astype(np.uint8).reshape(-1, 28, 28)
    return images, table[:, 0].astype(np.int64)


def _first_line(path: Path) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.readline().strip()
    except OSError as error:
        raise DataFormatError(f"{path}: cannot read ({error.strerror or error})") from error
    except UnicodeDecodeError as error:
        raise DataFormatError(f"{path}: not a UTF-8 text CSV file") from error


def _is_ascii_file(path: Path) -> bool:
    """True if every byte but a leading UTF-8 byte-order mark is ASCII (read in 1 MiB chunks)."""
    try:
        with open(path, "rb") as handle:
            if handle.read(3) != b"\xef\xbb\xbf":
                handle.seek(0)
            while chunk := handle.read(1 << 20):
                if not chunk.isascii():
                    return False
    except OSError as error:
        raise DataFormatError(f"{path}: cannot read ({error.strerror or error})") from error
    return True


def _out_of_range(table: np.ndarray) -> bool:
    return bool((table[:, 1:] < 0).any() or (table[:, 1:] > 255).any() or (table[:, 0] < 0).any())


def _raise_first_bad_line(path: Path, has_header: bool) -> None:
    """Scan the file line by line and raise a DataFormatError for the first bad line."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if number == 1 and has_header:
                continue
            text = line.strip()
            if not text:
                continue
            cells = text.split(",")
            if len(cells) != COLUMNS:
                raise DataFormatError(
                    f"{path}: line {number}: expected {COLUMNS} columns, got {len(cells)}"
                )
            for index, cell in enumerate(cells):
                _check_cell(path, number, index, cell.strip())


def _check_cell(path: Path, number: int, index: int, cell: str) -> None:
    """Raise if one cell is not an integer in range (0..255 for pixels, >= 0 for the label)."""
    where = f"{path}: line {number}, column {index + 1} ({_column_name(index)})"
    if not _is_int(cell):
        raise DataFormatError(f"{where}: expected an integer, got {cell!r}")
    value = int(cell)
    if index == 0 and not 0 <= value < 2**31:
        raise DataFormatError(f"{where}: label must be a non-negative integer, got {value}")
    if index > 0 and not 0 <= value <= 255:
        raise DataFormatError(f"{where}: pixel must be in 0..255, got {value}")
