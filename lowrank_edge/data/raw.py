"""Raw train/test arrays as read from disk, before scaling and the validation split.

Every source (MNIST fetch, IDX folders, CSV files) produces `RawSplits`, so the
conversion to the float `Dataset` happens in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lowrank_edge.data.dataset import Dataset, split_train_val
from lowrank_edge.errors import DataFormatError


@dataclass(frozen=True)
class RawSplits:
    """uint8 upright images (N, 28, 28) and int64 labels (N,) for train and test."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    labels: tuple[str, ...]
    source: str


def check_pair(images: np.ndarray, labels: np.ndarray, num_classes: int, what: str) -> np.ndarray:
    """Check one split's images/labels agree in count and labels lie in 0..num_classes-1.

    Returns the labels as int64. `what` names the files in the error message.
    """
    if len(images) != len(labels):
        raise DataFormatError(
            f"{what}: {len(images)} images but {len(labels)} labels; the counts must match"
        )
    labels = labels.astype(np.int64)
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        index = int(bad[0])
        raise DataFormatError(
            f"{what}: label {int(labels[index])} at index {index} is outside 0..{num_classes - 1} "
            f"({num_classes} classes; {bad.size} bad labels in all)"
        )
    return labels


def to_dataset(name: str, raw: RawSplits, val_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """Scale to float32 [0, 1] with a channel axis and split train 80/20 into train/val."""
    x_train, y_train, x_val, y_val = split_train_val(
        raw.x_train, raw.y_train, val_fraction=val_fraction, seed=seed
    )
    return Dataset(
        name=name,
        x_train=to_float_images(x_train),
        y_train=y_train.astype(np.int64),
        x_val=to_float_images(x_val),
        y_val=y_val.astype(np.int64),
        x_test=to_float_images(raw.x_test),
        y_test=raw.y_test.astype(np.int64),
        num_classes=raw.num_classes,
        labels=raw.labels,
        source=raw.source,
    )


def to_float_images(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) in [0, 1]."""
    return (images.astype(np.float32) / np.float32(255.0))[..., np.newaxis]
