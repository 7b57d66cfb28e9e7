"""Load an EMNIST split from a folder: official IDX files or Kaggle CSVs, plus the mapping file.

The split prefix (`emnist-balanced`, the stand-in `emnist47`, ...) is found from
the file names. EMNIST stores every image transposed; the loader returns them
upright (MNIST orientation).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lowrank_edge.data.csv_files import read_label_pixel_csv
from lowrank_edge.data.idx import read_idx_images, read_idx_labels
from lowrank_edge.data.raw import RawSplits, check_pair
from lowrank_edge.errors import DataFormatError, LowrankEdgeError

_IDX_NAME = re.compile(
    r"^(?P<prefix>.+)-(?P<split>train|test)-(?P<kind>images-idx3|labels-idx1)-ubyte(?:\.gz)?$"
)
_CSV_NAME = re.compile(r"^(?P<prefix>.+)-(?P<split>train|test)\.csv$")
_MAPPING_SUFFIX = "-mapping.txt"
_IDX_KINDS = ("images-idx3", "labels-idx1")

EXPECTED_FILES = (
    "<prefix>-train-images-idx3-ubyte(.gz), <prefix>-train-labels-idx1-ubyte(.gz), "
    "<prefix>-test-images-idx3-ubyte(.gz), <prefix>-test-labels-idx1-ubyte(.gz) and "
    "<prefix>-mapping.txt (e.g. prefix emnist-balanced), or the Kaggle CSVs "
    "<prefix>-train.csv and <prefix>-test.csv with <prefix>-mapping.txt"
)


@dataclass(frozen=True)
class EmnistFiles:
    """The files of one EMNIST split; `kind` is "idx" (4 IDX files) or "csv" (2 CSV files)."""

    prefix: str
    kind: str
    mapping: Path
    train: tuple[Path, ...]  # (images, labels) for idx, (csv,) for csv
    test: tuple[Path, ...]


def read_mapping(path: str | os.PathLike) -> tuple[str, ...]:
    """Read `label ascii_code` lines into display labels indexed by class (0..K-1, no gaps)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataFormatError(f"{path}: cannot read the mapping file ({error})") from error
    by_label: dict[int, str] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        cells = line.split()
        if len(cells) != 2 or not all(c.isdigit() for c in cells):
            raise DataFormatError(
                f"{path}: line {number}: expected 'label ascii_code' (two integers), got {line!r}"
            )
        label, code = int(cells[0]), int(cells[1])
        if label in by_label:
            raise DataFormatError(f"{path}: line {number}: label {label} appears twice")
        if not 32 < code < 0x110000:
            raise DataFormatError(
                f"{path}: line {number}: {code} is not a printable character code"
            )
        by_label[label] = chr(code)
    if not by_label:
        raise DataFormatError(f"{path}: the mapping file is empty")
    missing = sorted(set(range(len(by_label))) - set(by_label))
    if missing:
        raise DataFormatError(
            f"{path}: labels must run 0..{len(by_label) - 1} without gaps; missing {missing[:5]}"
        )
    return tuple(by_label[i] for i in range(len(by_label)))


def find_emnist_files(folder: str | os.PathLike, prefix: str | None = None) -> EmnistFiles:
    """Find one EMNIST split in `folder` (IDX files preferred over CSVs for the same prefix)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LowrankEdgeError(
            f"{folder}: not a folder; expected a folder holding {EXPECTED_FILES}"
        )
    names = {p.name: p for p in folder.iterdir() if p.is_file()}
    prefixes = sorted(
        {m["prefix"] for n in names for m in [_IDX_NAME.match(n) or _CSV_NAME.match(n)] if m}
    )
    if prefix is None:
        if not prefixes:
            raise LowrankEdgeError(f"{folder}: no EMNIST files found; expected {EXPECTED_FILES}")
        if len(prefixes) > 1:
            raise LowrankEdgeError(
                f"{folder}: several EMNIST splits found ({', '.join(prefixes)}); "
                "keep one split's files in a folder of its own"
            )
        prefix = prefixes[0]
    mapping = folder / f"{prefix}{_MAPPING_SUFFIX}"
    idx_stems = [f"{prefix}-{s}-{k}-ubyte" for s in ("train", "test") for k in _IDX_KINDS]
    idx = [_pick(names, stem) for stem in idx_stems]
    csvs = [names.get(f"{prefix}-{split}.csv") for split in ("train", "test")]
    if all(idx):
        kind, train, test = "idx", (idx[0], idx[1]), (idx[2], idx[3])
    elif all(csvs):
        kind, train, test = "csv", (csvs[0],), (csvs[1],)
    else:
        if any(idx) or not any(csvs):
            missing = [f"{w}(.gz)" for w, p in zip(idx_stems, idx, strict=True) if p is None]
        else:
            missing = [
                f"{prefix}-{s}.csv"
                for s, p in zip(("train", "test"), csvs, strict=True)
                if p is None
            ]
        raise LowrankEdgeError(
            f"{folder}: incomplete EMNIST split {prefix!r}: missing {', '.join(missing)}"
        )
    if mapping.name not in names:
        raise LowrankEdgeError(
            f"{folder}: missing {mapping.name} (the 'label ascii_code' class list)"
        )
    return EmnistFiles(prefix=prefix, kind=kind, mapping=mapping, train=train, test=test)


def _pick(names: dict[str, Path], stem: str) -> Path | None:
    """The gzip file if present, else the plain one, else None."""
    return names.get(f"{stem}.gz") or names.get(stem)


def load_emnist(
    folder: str | os.PathLike,
    prefix: str | None = None,
    log: Callable[[str], None] | None = None,
) -> RawSplits:
    """Load the EMNIST split in `folder` as upright uint8 images and checked int64 labels."""
    files = find_emnist_files(folder, prefix)
    if log is not None:
        log(f"reading EMNIST split {files.prefix!r} ({files.kind.upper()}) from {Path(folder)}")
    labels = read_mapping(files.mapping)
    x_train, y_train = _read_split(files.train, files.kind)
    x_test, y_test = _read_split(files.test, files.kind)
    y_train = check_pair(x_train, y_train, len(labels), " / ".join(map(str, files.train)))
    y_test = check_pair(x_test, y_test, len(labels), " / ".join(map(str, files.test)))
    return RawSplits(
        x_train=transpose_images(x_train),
        y_train=y_train,
        x_test=transpose_images(x_test),
        y_test=y_test,
        num_classes=len(labels),
        labels=labels,
        source=f"{Path(folder)} ({files.prefix}, {files.kind.upper()})",
    )


def _read_split(paths: tuple[Path, ...], kind: str) -> tuple[np.ndarray, np.ndarray]:
    if kind == "idx":
        return read_idx_images(paths[0]), read_idx_labels(paths[1])
    return read_label_pixel_csv(paths[0])


def transpose_images(images: np.ndarray) -> np.ndarray:
    """Swap rows and columns of every (N, 28, 28) image (EMNIST stores them transposed)."""
    return np.ascontiguousarray(images.transpose(0, 2, 1))
