"""A user's `.npz` of images and integer labels: x_train, y_train, x_test, y_test, or x, y.

Read with allow_pickle=False after the archive's sizes are checked against its headers (as the
MNIST cache is), so a damaged file cannot make numpy reserve gigabytes. x is uint8 pixels
(default preprocessing `byte`) or float values already prepared (default `none`), (N, H, W) or
(N, H, W, C); y holds integer classes. An optional `class_names` array of strings names them.
With x, y only, a seeded stratified fifth of each class is the test split.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from lowrank_edge.data.dataset import capped_indices, hold_out_test
from lowrank_edge.data.mnist import check_npz_sizes
from lowrank_edge.data.raw import MAX_DECODED_BYTES, RawSplits, check_pair
from lowrank_edge.errors import DataFormatError

SPLIT_KEYS = ("x_train", "y_train", "x_test", "y_test")
WHOLE_KEYS = ("x", "y")
NAMES_KEY = "class_names"
MAX_UNNAMED_CLASSES = 100_000  # more classes than this need their names in class_names


def read_npz(
    path: str | os.PathLike,
    max_bytes: int = MAX_DECODED_BYTES,
    max_images: int | None = None,
    seed: int = 0,
) -> RawSplits:
    """Read and check a user's .npz; every problem is one DataFormatError naming the file.

    `max_images` keeps at most that many images per class (and split, when the file has
    both), a draw seeded by `seed`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    try:
        check_npz_sizes(path, max_bytes, what="a data file this size can hold")
        with np.load(path, allow_pickle=False) as archive:
            keys = set(archive.files)
            wanted = _layout(path, keys)
            arrays = {key: archive[key] for key in (*wanted, NAMES_KEY) if key in keys}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DataFormatError(f"{path}: not a readable .npz ({error})") from None
    for key in wanted:
        _check_array(path, key, arrays[key])
    if max_images is not None:
        for x_key, y_key in zip(wanted[::2], wanted[1::2], strict=True):
            keep = capped_indices(arrays[y_key], max_images, seed)
            arrays[x_key], arrays[y_key] = arrays[x_key][keep], arrays[y_key][keep]
    if "x" in arrays:
        held = hold_out_test(arrays["x"], arrays["y"])
        arrays.update(zip(SPLIT_KEYS, held, strict=True))
    x_train, x_test = arrays["x_train"], arrays["x_test"]
    if x_train.dtype != x_test.dtype or x_train.shape[1:] != x_test.shape[1:]:
        raise DataFormatError(
            f"{path}: x_train is {x_train.dtype} {x_train.shape[1:]} per image but x_test is "
            f"{x_test.dtype} {x_test.shape[1:]}; both splits must agree"
        )
    labels = _class_names(path, arrays, np.concatenate([arrays["y_train"], arrays["y_test"]]))
    return RawSplits(
        x_train=x_train,
        y_train=check_pair(x_train, arrays["y_train"], len(labels), f"{path} (train)"),
        x_test=x_test,
        y_test=check_pair(x_test, arrays["y_test"], len(labels), f"{path} (test)"),
        num_classes=len(labels),
        labels=labels,
        source=str(path),
        preprocessing="byte" if x_train.dtype == np.uint8 else "none",
    )


def _layout(path: Path, keys: set[str]) -> tuple[str, ...]:
    """The keys to read: the four split arrays, or x and y; else an error listing what is there."""
    for layout in (SPLIT_KEYS, WHOLE_KEYS):
        if set(layout) <= keys:
            return layout
    found = ", ".join(sorted(keys)) or "nothing"
    raise DataFormatError(
        f"{path}: expected arrays {', '.join(SPLIT_KEYS)} or {', '.join(WHOLE_KEYS)}; found {found}"
    )


def _check_array(path: Path, key: str, array: np.ndarray) -> None:
    """x: uint8 or finite float, (N, H, W) or (N, H, W, 1..4); y: integers, (N,)."""
    if key.startswith("y"):
        if array.ndim != 1 or array.dtype.kind not in "iu":
            raise DataFormatError(
                f"{path}: {key} must be integer class labels of shape (N,), "
                f"got {array.dtype} {array.shape}"
            )
        return
    if array.dtype != np.uint8 and array.dtype.kind != "f":
        raise DataFormatError(
            f"{path}: {key} must be uint8 pixels or float values, got {array.dtype}"
        )
    if array.ndim not in (3, 4) or (array.ndim == 4 and not 1 <= array.shape[-1] <= 4):
        raise DataFormatError(
            f"{path}: {key} must be images of shape (N, H, W) or (N, H, W, C) with C from 1 "
            f"to 4, got shape {array.shape}"
        )
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise DataFormatError(f"{path}: {key} holds NaN or infinite values")


def _class_names(path: Path, arrays: dict, labels: np.ndarray) -> tuple[str, ...]:
    """The names in `class_names`, or "0".."K-1" for K = the largest label + 1."""
    names = arrays.get(NAMES_KEY)
    if names is not None:
        if names.ndim != 1 or names.dtype.kind != "U":
            raise DataFormatError(
                f"{path}: {NAMES_KEY} must be a 1-D array of strings, got {names.dtype} "
                f"{names.shape}"
            )
        return tuple(str(name) for name in names)
    count = int(labels.max(initial=0)) + 1
    if count > MAX_UNNAMED_CLASSES:
        raise DataFormatError(
            f"{path}: label {count - 1} implies {count:,} classes, more than "
            f"{MAX_UNNAMED_CLASSES:,}; give their names in a {NAMES_KEY} array of strings"
        )
    return tuple(str(i) for i in range(count))
