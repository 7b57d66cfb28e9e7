"""Small keras.applications models (weights=None) and a tiny in-memory RGB `Dataset`.

- `tiny_rgb_dataset(shape, num_classes)`: faint noise in [0, 1] with the channel c % C of class c
  bright, so even a random network's features tell the classes apart.
- `build_application(name, dataset)`: MobileNetV2 (alpha 0.35) or MobileNetV3Small at the
  dataset's image shape and class count, softmax head; its BatchNorm statistics are set from
  the dataset's images and its classifier scaled, so outputs differ between images (a
  weights=None model otherwise outputs the same near-uniform probabilities for every image).
"""

from __future__ import annotations

import keras
import numpy as np

from lowrank_edge.compress.batchnorm_stats import recalibrate_batchnorm
from lowrank_edge.compress.calibration import capture_inputs
from lowrank_edge.data.dataset import Dataset

APPLICATIONS = {
    "MobileNetV2": lambda shape, classes: keras.applications.MobileNetV2(
        input_shape=shape, alpha=0.35, weights=None, classes=classes
    ),
    "MobileNetV3Small": lambda shape, classes: keras.applications.MobileNetV3Small(
        input_shape=shape, weights=None, classes=classes
    ),
}
LOGIT_MARGIN = 4.0  # the fitted classifier aims at +4 for the true class, -4 for the others
RIDGE = 0.1  # of the mean feature energy: smooth fits that hold on unseen images
NOISE = 0.01  # of the value range: classes stay far apart after random layers (int8 holds)


def tiny_rgb_dataset(
    shape: tuple[int, int, int] = (32, 32, 3),
    num_classes: int = 3,
    counts: tuple[int, int, int] = (96, 32, 64),
    seed: int = 0,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> Dataset:
    """Train/val/test splits of `counts` noisy images; class c brightens channel c % C."""
    rng = np.random.default_rng(seed)

    def split(count: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, num_classes, count).astype(np.int64)
        labels[: min(count, num_classes)] = np.arange(min(count, num_classes))
        images = rng.random((count, *shape), dtype=np.float32) * np.float32(NOISE)
        images[np.arange(count), ..., labels % shape[-1]] += np.float32(1.0 - NOISE)
        low, high = value_range
        return (images * np.float32(high - low) + np.float32(low)).astype(np.float32), labels

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (split(n) for n in counts)
    return Dataset(
        name="tiny-rgb",
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        num_classes=num_classes,
        labels=tuple(f"class{i}" for i in range(num_classes)),
        source="tests/harness/applications.py",
    )


def last_kernel_layer(model: keras.Model) -> keras.layers.Layer:
    """The last layer (in model.layers order) holding a kernel: the classifier."""
    return next(layer for layer in reversed(model.layers) if hasattr(layer, "kernel"))


def fit_classifier(model: keras.Model, x: np.ndarray, y: np.ndarray, num_classes: int) -> None:
    """Set the last kernel layer's weights by ridge regression of its inputs on +-margin
    targets for labels `y` (a 1x1 conv or Dense classifier)."""
    head = last_kernel_layer(model)
    with capture_inputs({"head": head}) as seen:
        model(x, training=False)
    features = np.concatenate([f.reshape(len(f), -1) for f in seen["head"]]).astype(np.float64)
    design = np.hstack([features, np.ones((len(features), 1))])
    targets = np.where(np.eye(num_classes)[y] > 0, LOGIT_MARGIN, -LOGIT_MARGIN)
    gram = design.T @ design
    gram += RIDGE * np.trace(gram) / len(gram) * np.eye(len(gram))
    solution = np.linalg.solve(gram, design.T @ targets)
    kernel, bias = solution[:-1], solution[-1]
    shape = tuple(head.kernel.shape)
    head.set_weights([kernel.reshape(shape).astype(np.float32), bias.astype(np.float32)])


def build_application(name: str, dataset: Dataset, seed: int = 0) -> keras.Model:
    """keras.applications `name` for `dataset`'s images and classes (see the module doc)."""
    keras.utils.set_random_seed(seed)
    model = APPLICATIONS[name](tuple(dataset.x_train.shape[1:]), dataset.num_classes)
    low, high = float(dataset.x_train.min()), float(dataset.x_train.max())
    noise = np.random.default_rng(seed).uniform(low, high, (32, *dataset.x_train.shape[1:]))
    recalibrate_batchnorm(model, noise.astype(np.float32))  # broad statistics: no chaos
    fit_classifier(model, dataset.x_train, dataset.y_train, dataset.num_classes)
    return model
