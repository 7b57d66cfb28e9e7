"""The dataset every step passes around (in memory, or a folder streamed from disk), and the
train/validation split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lowrank_edge.data.image_files import Images, is_streamed, take

TEST_FRACTION = 0.2  # of each class, for sources without a test split of their own
TEST_SPLIT_SEED = 0  # fixed: runs with any --seed measure on the same test images


@dataclass(frozen=True)
class Dataset:
    """Images as float32 (N, H, W, C), upright, as the model takes them; labels as int64 (N,).

    `labels` maps a class index to its display text ("0".."9", "A", ...). `preprocessing`
    names how pixels became these values (`lowrank_edge.runtime.preprocess`) and
    `input_range` the (low, high) they fall in: MNIST/EMNIST are `unit`, [0, 1]. The images of
    a folder too large for memory are `ImageFiles`, decoded batch by batch when indexed.
    """

    name: str
    x_train: Images
    y_train: np.ndarray
    x_val: Images
    y_val: np.ndarray
    x_test: Images
    y_test: np.ndarray
    num_classes: int
    labels: tuple[str, ...]
    source: str = ""  # where the data came from (a path or a description)
    preprocessing: str = "unit"
    input_range: tuple[float, float] = (0.0, 1.0)

    def summary(self) -> str:
        """One line per split, for `lowrank-edge data`."""
        rows = []
        for split in ("train", "val", "test"):
            x, y = getattr(self, "x_" + split), getattr(self, "y_" + split)
            streamed = " (streamed from disk)" if is_streamed(x) else ""
            rows.append(f"{split:5s} x={x.shape} y={y.shape}{streamed}")
        rows.append(
            f"input {self.preprocessing}, range [{self.input_range[0]:g}, {self.input_range[1]:g}]"
        )
        return "\n".join(rows)


def split_train_val(
    x: Images, y: np.ndarray, val_fraction: float = 0.2, seed: int = 0
) -> tuple[Images, np.ndarray, Images, np.ndarray]:
    """Shuffle with a fixed seed and split off `val_fraction` for validation.

    Seed protocol: 80/20 with the run's seed.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = int(round(len(x) * val_fraction))
    val, train = order[:n_val], order[n_val:]
    return take(x, train), y[train], take(x, val), y[val]


def stratified_split(
    y: np.ndarray, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices): `test_fraction` of each class, drawn with `seed`.

    A class with two or more images keeps at least one on each side; both index arrays
    are sorted, so the split keeps the source's order.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    test = []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        count = int(round(len(members) * test_fraction))
        if len(members) >= 2:
            count = min(max(count, 1), len(members) - 1)
        test.append(members[:count])
    test_index = np.sort(np.concatenate(test)) if test else np.zeros(0, dtype=np.int64)
    train_index = np.setdiff1d(np.arange(len(y)), test_index)
    return train_index, test_index


def hold_out_test(x: Images, y: np.ndarray) -> tuple[Images, np.ndarray, Images, np.ndarray]:
    """(x_train, y_train, x_test, y_test) for a source without its own test split: a fixed
    seeded, stratified `TEST_FRACTION` of each class is held out."""
    train, test = stratified_split(y, TEST_FRACTION, TEST_SPLIT_SEED)
    return take(x, train), y[train], take(x, test), y[test]


def capped_indices(labels: np.ndarray, max_images: int, seed: int = 0) -> np.ndarray:
    """Sorted indices keeping at most `max_images` of each class (a draw seeded by `seed`)."""
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) > max_images:
            members = rng.choice(members, size=max_images, replace=False)
        keep.append(members)
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)
