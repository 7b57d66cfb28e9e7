"""`tfds:NAME[:SPLIT]`: an image classification dataset already in the user's TFDS data dir.

tensorflow-datasets is an optional extra (`pip install 'lowrank-edge[tfds]'`); nothing is ever
downloaded (download=False). Without SPLIT the dataset's `train` and `test` splits are used (only
`train`, with a seeded stratified test fifth, when it has no `test`); with SPLIT, that split is
divided the same way. Images are fitted to the target shape as they stream in, and the float32
size is bounded while they do.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from lowrank_edge.data.dataset import hold_out_test
from lowrank_edge.data.images import ImageShape, fit_arrays
from lowrank_edge.data.raw import MAX_DECODED_BYTES, RawSplits, check_decoded_bytes
from lowrank_edge.errors import DataFormatError, LowrankEdgeError, MissingDependencyError
from lowrank_edge.logs import Log, log_stderr

TFDS_PREFIX = "tfds:"
TFDS_EXTRA = "pip install 'lowrank-edge[tfds]'"


def parse_tfds_spec(spec: str) -> tuple[str, str | None]:
    """'tfds:NAME[:SPLIT]' -> (NAME, SPLIT or None); the split may hold colons (train[:10%])."""
    name, _, split = spec[len(TFDS_PREFIX) :].partition(":")
    if not name:
        raise LowrankEdgeError(f"{spec!r}: expected tfds:NAME or tfds:NAME:SPLIT")
    return name, split or None


def import_tfds():
    """The tensorflow_datasets module, or one error naming the extra to install."""
    try:
        import tensorflow_datasets
    except ImportError as error:
        raise MissingDependencyError(
            f"tfds: datasets need tensorflow-datasets: {TFDS_EXTRA}"
        ) from error
    return tensorflow_datasets


def read_tfds(
    spec: str,
    *,
    data_dir: str | None = None,
    wanted: tuple[int | None, int | None, int | None] | None = None,
    max_images: int | None = None,
    max_bytes: int = MAX_DECODED_BYTES,
    log: Log = log_stderr,
) -> RawSplits:
    """Read `tfds:NAME[:SPLIT]` from the TFDS data dir (`data_dir`, else TFDS' default)."""
    tfds = import_tfds()
    name, split = parse_tfds_spec(spec)
    first, info = _load(tfds, spec, name, split or "train", data_dir)
    image_key, label_key = _supervised_keys(spec, info)
    label_feature = info.features[label_key]
    if not hasattr(label_feature, "num_classes"):
        raise DataFormatError(f"{spec}: its label '{label_key}' is not a class label")
    names = tuple(str(n) for n in label_feature.names)
    target = _target(spec, wanted, info.features[image_key].shape)
    known = set(info.splits.keys())
    reader = _Reader(spec, target, len(names), max_images, max_bytes)
    if split is None and ("test" in known or not known):
        x_train, y_train = reader.read(tfds.as_numpy(first))
        test, _ = _load(tfds, spec, name, "test", data_dir)
        x_test, y_test = reader.read(tfds.as_numpy(test))
    else:
        x, y = reader.read(tfds.as_numpy(first))
        x_train, y_train, x_test, y_test = hold_out_test(x, y)
    log(f"[data] {spec}: {len(x_train) + len(x_test):,} images in {len(names)} classes")
    return RawSplits(
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_classes=len(names),
        labels=names,
        source=spec + (f" ({data_dir})" if data_dir else ""),
        preprocessing="byte",
    )


def _load(tfds, spec: str, name: str, split: str, data_dir):
    try:
        return tfds.load(
            name,
            split=split,
            data_dir=None if data_dir is None else str(data_dir),
            download=False,
            as_supervised=True,
            with_info=True,
        )
    except Exception as error:  # tfds raises AssertionError, ValueError, ... for missing data
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise LowrankEdgeError(
            f"{spec}: cannot read split {split!r} from the TFDS data dir ({first_line}); "
            "lowrank-edge never downloads: prepare it first (e.g. `tfds build NAME`)"
        ) from None


def _supervised_keys(spec: str, info) -> tuple[str, str]:
    keys = info.supervised_keys
    if not keys or len(keys) < 2 or not all(isinstance(k, str) for k in keys[:2]):
        raise DataFormatError(f"{spec}: not an (image, label) dataset (supervised keys {keys})")
    return keys[0], keys[1]


def _target(spec: str, wanted, feature_shape) -> ImageShape:
    """The target shape from `wanted`, with the dataset's fixed image shape filling the rest."""
    shape = tuple(feature_shape or (None, None, None))
    if len(shape) != 3:
        raise DataFormatError(f"{spec}: images of shape {shape}, expected (H, W, C)")
    wanted = wanted or (None, None, None)
    merged = tuple(w if w is not None else s for w, s in zip(wanted, shape, strict=True))
    if merged[0] is None or merged[1] is None:
        raise DataFormatError(
            f"{spec}: its images vary in size and nothing fixes the size to resize them to: "
            "pass --image-size HxW (or a model whose input fixes it)"
        )
    return ImageShape(int(merged[0]), int(merged[1]), int(merged[2] or 3))


class _Reader:
    """Collects (image, label) examples fitted to one shape, capped per class, memory-bounded."""

    def __init__(self, spec, target: ImageShape, classes: int, max_images, max_bytes) -> None:
        self.spec, self.target, self.classes = spec, target, classes
        self.max_images, self.max_bytes, self.total = max_images, max_bytes, 0

    def read(self, examples: Iterable) -> tuple[np.ndarray, np.ndarray]:
        images, labels = [], []
        counts = np.zeros(self.classes, dtype=np.int64)
        for image, label in examples:
            label = int(label)
            if not 0 <= label < self.classes:
                raise DataFormatError(f"{self.spec}: label {label} outside 0..{self.classes - 1}")
            if self.max_images is not None and counts[label] >= self.max_images:
                if counts.min() >= self.max_images:
                    break
                continue
            self.total += 1
            check_decoded_bytes(self.total, self.target, self.max_bytes, self.spec)
            images.append(fit_arrays(np.asarray(image)[np.newaxis], self.target)[0])
            labels.append(label)
            counts[label] += 1
        shape = (0, self.target.height, self.target.width, self.target.channels)
        x = np.stack(images) if images else np.zeros(shape, np.uint8)
        return x, np.array(labels, dtype=np.int64)
