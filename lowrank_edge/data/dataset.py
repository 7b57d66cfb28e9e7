"""The in-memory dataset every step passes around, and the train/validation split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Dataset:
    """Images as float32 (N, 28, 28, 1) in [0, 1], upright; labels as int64 (N,).

    `labels` maps a class index to its display text ("0".."9", "A", ...).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    labels: tuple[str, ...]
    source: str = ""  # where the data came from (a path or a description)

    def summary(self) -> str:
        """One line per split, for `lowrank-edge data`."""
        rows = []
        for split in ("train", "val", "test"):
            x, y = getattr(self, "x_" + split), getattr(self, "y_" + split)
            rows.append(f"{split:5s} x={x.shape} y={y.shape}")
        return "\n".join(rows)


def split_train_val(
    x: np.ndarray, y: np.ndarray, val_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle with a fixed seed and split off `val_fraction` for validation.

    Seed protocol: 80/20 with the run's seed.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = int(round(len(x) * val_fraction))
    val, train = order[:n_val], order[n_val:]
    return x[train], y[train], x[val], y[val]
