"""Raw train/test arrays as read from disk, before preprocessing and the validation split.

Every source (MNIST fetch, IDX folders, CSV files, image folders, .npz files, TFDS) produces
`RawSplits`, so fitting to the model's input and the conversion to the float `Dataset`
happen in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lowrank_edge.data.dataset import Dataset, split_train_val
from lowrank_edge.data.image_files import Images, is_streamed
from lowrank_edge.data.images import ImageShape, fit_arrays
from lowrank_edge.errors import DataFormatError
from lowrank_edge.runtime.preprocess import (
    DEFAULT_PREPROCESSING,
    check_channels,
    check_preprocessing,
    nominal_range,
    preprocess,
)

MAX_DECODED_BYTES = 4 << 30  # the most the float32 images of one dataset may take in memory
PIXEL_RANGE = (0.0, 255.0)  # what decoded image files hold, before preprocessing


@dataclass(frozen=True)
class RawSplits:
    """Upright images (N, H, W) or (N, H, W, C) and int64 labels (N,) for train and test.

    Images are uint8 pixels, or float for sources that hold prepared values, or (a folder too
    large for memory) `ImageFiles` already fitted to the model's input; `preprocessing` is the
    source's default way to model inputs (MNIST/EMNIST: `unit`).
    """

    x_train: Images
    y_train: np.ndarray
    x_test: Images
    y_test: np.ndarray
    num_classes: int
    labels: tuple[str, ...]
    source: str
    preprocessing: str = DEFAULT_PREPROCESSING


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


def to_dataset(
    name: str,
    raw: RawSplits,
    val_fraction: float = 0.2,
    seed: int = 0,
    *,
    preprocessing: str | None = None,
    target: ImageShape | None = None,
    max_bytes: int = MAX_DECODED_BYTES,
) -> Dataset:
    """Fit the images to `target` (if given), split train into train/val with `seed`, and
    turn pixels into float32 model inputs by `preprocessing` (default: the source's own).

    MNIST/EMNIST without options give exactly the arrays they always gave: `unit`, [0, 1].
    """
    preprocessing = check_preprocessing(preprocessing or raw.preprocessing)
    if raw.num_classes < 2 or len(raw.x_train) == 0:
        raise DataFormatError(
            f"{raw.source}: {raw.num_classes} class(es) and {len(raw.x_train)} training images; "
            "a classifier needs at least two classes and some training images"
        )
    if is_streamed(raw.x_train):  # fitted as they are read, decoded only when used
        x_train, x_test = raw.x_train, raw.x_test
    else:
        x_train, x_test = _fitted_arrays(raw, target, max_bytes)
    check_channels(preprocessing, x_train.shape[-1])
    x_train, y_train, x_val, y_val = split_train_val(
        x_train, raw.y_train, val_fraction=val_fraction, seed=seed
    )
    splits = [_prepared(x, preprocessing) for x in (x_train, x_val, x_test)]
    return Dataset(
        name=name,
        x_train=splits[0],
        y_train=y_train.astype(np.int64),
        x_val=splits[1],
        y_val=y_val.astype(np.int64),
        x_test=splits[2],
        y_test=raw.y_test.astype(np.int64),
        num_classes=raw.num_classes,
        labels=raw.labels,
        source=raw.source,
        preprocessing=preprocessing,
        input_range=nominal_range(preprocessing) or observed_range(splits),
    )


def _fitted_arrays(
    raw: RawSplits, target: ImageShape | None, max_bytes: int
) -> tuple[np.ndarray, np.ndarray]:
    """In-memory train/test images with channels, fitted to `target` (if given), within
    `max_bytes` as float32."""
    x_train, x_test = with_channels(raw.x_train), with_channels(raw.x_test)
    shape = target if target is not None else ImageShape(*x_train.shape[1:])
    check_decoded_bytes(len(x_train) + len(x_test), shape, max_bytes, raw.source)
    if target is not None:
        x_train, x_test = fit_arrays(x_train, target), fit_arrays(x_test, target)
    return x_train, x_test


def _prepared(images: Images, preprocessing: str) -> Images:
    """Model inputs by `preprocessing`: computed now in memory, on decoding when streamed."""
    if is_streamed(images):
        return images.with_preprocessing(preprocessing)
    return preprocess(images, preprocessing)


def with_channels(images: np.ndarray) -> np.ndarray:
    """(N, H, W) -> (N, H, W, 1); (N, H, W, C) as it is."""
    return images[..., np.newaxis] if images.ndim == 3 else images


def observed_range(arrays: list[Images]) -> tuple[float, float]:
    """The (min, max) over every value of `arrays` ((0, 0) when they are empty); streamed
    image files (never decoded whole) give the pixel range 0..255."""
    if any(is_streamed(a) for a in arrays):
        return PIXEL_RANGE
    filled = [a for a in arrays if a.size]
    if not filled:
        return (0.0, 0.0)
    return (float(min(a.min() for a in filled)), float(max(a.max() for a in filled)))


def decoded_bytes(count: int, shape: ImageShape) -> int:
    """What `count` images of `shape` take as float32."""
    return count * shape.height * shape.width * shape.channels * 4


def check_decoded_bytes(count: int, shape: ImageShape, max_bytes: int, where: str) -> None:
    """Refuse, before decoding, images that would take over `max_bytes` as float32."""
    needed = decoded_bytes(count, shape)
    if needed > max_bytes:
        per_image = max(1, needed // max(count, 1))
        raise DataFormatError(
            f"{where}: {count:,} images of {shape} take {needed / 2**30:.1f} GiB as float32, "
            f"over the {max_bytes / 2**30:.1f} GiB limit; cap the images per class with "
            f"--max-images N (about {max_bytes // per_image:,} images fit in all) or use a "
            "smaller --image-size"
        )
