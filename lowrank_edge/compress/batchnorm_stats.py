"""Re-estimate BatchNorm moving statistics after compression, in graph order.

Each BatchNormalization's moving mean and variance are set to the mean and (biased) variance of
its inputs on calibration images, as the compressed model now produces them. Graph order
matters: a BatchNorm's inputs depend on every BatchNorm before it, so each is re-estimated
after the ones before it, with one forward pass over the images per BatchNorm. Nothing else
in the model changes.
"""

from __future__ import annotations

import keras
import numpy as np

from lowrank_edge.compress.calibration import (
    DEFAULT_BATCH,
    batches,
    capture_inputs,
    layers_by_path,
)
from lowrank_edge.compress.shards import my_share, summed


def batchnorm_layers(model: keras.Model) -> dict[str, keras.layers.BatchNormalization]:
    """{path: BatchNormalization layer} in graph order."""
    return {
        path: layer
        for path, layer in layers_by_path(model).items()
        if isinstance(layer, keras.layers.BatchNormalization)
    }


def input_moments(
    model: keras.Model,
    path: str,
    layer: keras.layers.BatchNormalization,
    images: np.ndarray,
    batch_size: int = DEFAULT_BATCH,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and biased variance of `layer`'s inputs over `images` (float64)."""
    count, total, squares = 0, 0.0, 0.0
    for batch in batches(my_share(images), batch_size):  # all of them unless multi-worker
        with capture_inputs({path: layer}) as seen:
            model(batch, training=False)
        for inputs in seen[path]:
            x = np.moveaxis(np.asarray(inputs, dtype=np.float64), layer.axis, -1)
            x = x.reshape(-1, x.shape[-1])
            count += len(x)
            total = total + x.sum(axis=0)
            squares = squares + (x * x).sum(axis=0)
    count, total, squares = summed(count, total, squares)  # over the workers, if several
    mean = total / count
    return mean, np.maximum(squares / count - mean * mean, 0.0)


def recalibrate_batchnorm(
    model: keras.Model, images: np.ndarray, batch_size: int = DEFAULT_BATCH
) -> list[str]:
    """Set every BatchNorm's moving statistics from `images`, in graph order; return the paths.

    `model` is changed in place (call it on a model you own, e.g. a fresh compression result).
    """
    done = []
    for path, layer in batchnorm_layers(model).items():
        mean, variance = input_moments(model, path, layer, images, batch_size)
        layer.moving_mean.assign(mean.astype(layer.moving_mean.dtype))
        layer.moving_variance.assign(variance.astype(layer.moving_variance.dtype))
        done.append(path)
    return done
