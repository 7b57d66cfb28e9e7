"""Datasets: MNIST (fetched and cached, or from a folder) and EMNIST (from a folder).

`load_dataset` is the one entry point; it never imports TensorFlow (Keras is only
run, in a subprocess, when MNIST has to be downloaded through it).
"""

from __future__ import annotations

import os
from pathlib import Path

from lowrank_edge.data.dataset import Dataset, split_train_val
from lowrank_edge.data.emnist import load_emnist
from lowrank_edge.data.mnist import fetch_mnist
from lowrank_edge.data.mnist_folder import load_mnist_folder
from lowrank_edge.data.raw import RawSplits, to_dataset
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.logs import Log, log_stderr

DATASET_NAMES = ("mnist", "emnist")
EMNIST_DIR_ENV = "LOWRANK_EDGE_EMNIST_DIR"

__all__ = [
    "DATASET_NAMES",
    "Dataset",
    "RawSplits",
    "load_dataset",
    "load_raw",
    "split_train_val",
]


def load_raw(
    name: str, data_dir: str | os.PathLike | None = None, *, log: Log = log_stderr
) -> RawSplits:
    """Read dataset `name` as uint8 train/test splits (no validation split yet)."""
    if name == "mnist":
        if data_dir is None:
            return fetch_mnist(log=log)
        return load_mnist_folder(data_dir, log)
    if name == "emnist":
        folder = data_dir if data_dir is not None else os.environ.get(EMNIST_DIR_ENV)
        if not folder:
            raise LowrankEdgeError(
                "emnist needs its files: pass --data-dir DIR "
                f"(e.g. --data-dir ../shared/data/emnist47) or set {EMNIST_DIR_ENV}"
            )
        return load_emnist(Path(folder), log=log)
    raise LowrankEdgeError(f"unknown dataset {name!r}; known: {', '.join(DATASET_NAMES)}")


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    log: Log = log_stderr,
) -> Dataset:
    """Load `name` ("mnist" or "emnist") as float32 upright images with an 80/20 train/val split.

    The test split is the dataset's own (for Kaggle MNIST CSVs: a fixed held-out 1/7).
    """
    return to_dataset(name, load_raw(name, data_dir, log=log), val_fraction=val_fraction, seed=seed)
