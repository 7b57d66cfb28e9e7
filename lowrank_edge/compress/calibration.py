"""Calibration statistics: second moments of each layer's inputs on a few training images.

A layer's kernel matrix W (m, n) multiplies rows of length m: the input vector for a Dense, the
im2col patch (kh, kw, cin flattened as the kernel is) for a Conv2D, taken with the layer's own
stride, padding and dilation. The data-aware factoriser needs X^T X over those rows (and, layer
by layer, the cross moment between the inputs of the compressed and the original model). Inputs
are captured by wrapping each layer's `call` for one forward pass at a time, on private clones
or on a model we own, and reduced batch by batch, so memory stays bounded by one batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import keras
import numpy as np

from lowrank_edge.compress.graph import group_by_layer, layer_calls
from lowrank_edge.errors import CompressionError

DEFAULT_CALIBRATION_IMAGES = 512
DEFAULT_BATCH = 64


def calibration_images(
    x_train: np.ndarray, count: int = DEFAULT_CALIBRATION_IMAGES, seed: int = 0
) -> np.ndarray:
    """`count` images drawn without replacement (seeded) from the training split only."""
    if count < 1:
        raise CompressionError(f"calibration needs at least 1 image, got {count}")
    if len(x_train) == 0:
        raise CompressionError("calibration needs training images; the training split is empty")
    order = np.random.default_rng(seed).permutation(len(x_train))[: min(count, len(x_train))]
    return np.asarray(x_train[np.sort(order)])


def layers_by_path(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """{layer path: leaf layer} in graph order (nested models walked; shared layers once)."""
    return {calls[0].path: calls[0].layer for calls in group_by_layer(layer_calls(model))}


def kernel_rows(layer: keras.layers.Layer, inputs: np.ndarray) -> np.ndarray:
    """The rows (count, m) that `layer`'s kernel matrix multiplies for these inputs."""
    x = np.asarray(inputs, dtype=np.float32)
    if isinstance(layer, keras.layers.Conv2D):
        import tensorflow as tf

        if layer.data_format == "channels_first":
            x = np.transpose(x, (0, 2, 3, 1))
        kh, kw = layer.kernel_size
        sh, sw = layer.strides
        dh, dw = layer.dilation_rate
        patches = tf.image.extract_patches(
            x,
            sizes=[1, kh, kw, 1],
            strides=[1, sh, sw, 1],
            rates=[1, dh, dw, 1],
            padding=layer.padding.upper(),
        )
        return np.asarray(patches).reshape(-1, patches.shape[-1])
    return x.reshape(-1, x.shape[-1])


@contextlib.contextmanager
def capture_inputs(layers: Mapping[str, keras.layers.Layer]) -> Iterator[dict[str, list]]:
    """While active, every call of each layer appends its first input (numpy) to the result."""
    seen: dict[str, list] = {path: [] for path in layers}
    patched = []
    try:
        for path, layer in layers.items():
            original = layer.call

            def wrapper(*args, _path=path, _original=original, **kwargs):
                seen[_path].append(np.asarray(args[0]))
                return _original(*args, **kwargs)

            layer.call = wrapper
            patched.append(layer)
        yield seen
    finally:
        for layer in patched:
            del layer.call  # the instance attribute goes; the class method shows again


def batches(images: np.ndarray, batch_size: int = DEFAULT_BATCH) -> Iterator[np.ndarray]:
    """Consecutive slices of `images` of at most `batch_size`."""
    for start in range(0, len(images), batch_size):
        yield images[start : start + batch_size]


def input_grams(
    model: keras.Model,
    images: np.ndarray,
    paths: Sequence[str],
    batch_size: int = DEFAULT_BATCH,
) -> dict[str, np.ndarray]:
    """{path: X^T X} (float64) of each listed layer's kernel rows, in one pass over `images`."""
    layers = layers_by_path(model)
    missing = [p for p in paths if p not in layers]
    if missing:
        raise CompressionError(f"model '{model.name}' has no layer(s) {missing}")
    chosen = {p: layers[p] for p in paths}
    grams: dict[str, np.ndarray] = {}
    for batch in batches(images, batch_size):
        with capture_inputs(chosen) as seen:
            model(batch, training=False)
        for path, captured in seen.items():
            for inputs in captured:
                rows = kernel_rows(chosen[path], inputs).astype(np.float64)
                grams[path] = grams.get(path, 0.0) + rows.T @ rows
    return grams


@dataclass(frozen=True)
class PairedMoments:
    """Moments of one layer's kernel rows in a compressed model (X^) and the original (X)."""

    gram: np.ndarray  # X^T X^
    cross: np.ndarray  # X^T X (rows from X^)
    sum_new: np.ndarray  # column sums of X^
    sum_old: np.ndarray  # column sums of X
    count: int  # rows

    def centered(self) -> tuple[np.ndarray, np.ndarray]:
        """(X^T X^, X^T X) of the mean-removed rows: for a fit with an intercept (bias)."""
        mean_new, mean_old = self.sum_new / self.count, self.sum_old / self.count
        gram = self.gram - self.count * np.outer(mean_new, mean_new)
        cross = self.cross - self.count * np.outer(mean_new, mean_old)
        return gram, cross


def paired_moments(
    model: keras.Model,
    reference: keras.Model,
    images: np.ndarray,
    path: str,
    batch_size: int = DEFAULT_BATCH,
) -> PairedMoments:
    """Moments of layer `path`'s rows: X^ in `model`, X in `reference`.

    Both models see the same images in the same order, so row i of X^ and of X come from the
    same image and position.
    """
    layer, ref_layer = layers_by_path(model)[path], layers_by_path(reference)[path]
    gram = cross = sum_new = sum_old = 0.0
    count = 0
    for batch in batches(images, batch_size):
        with capture_inputs({path: layer}) as new, capture_inputs({path: ref_layer}) as old:
            model(batch, training=False)
            reference(batch, training=False)
        for x_new, x_old in zip(new[path], old[path], strict=True):
            rows_new = kernel_rows(layer, x_new).astype(np.float64)
            rows_old = kernel_rows(ref_layer, x_old).astype(np.float64)
            gram = gram + rows_new.T @ rows_new
            cross = cross + rows_new.T @ rows_old
            sum_new = sum_new + rows_new.sum(axis=0)
            sum_old = sum_old + rows_old.sum(axis=0)
            count += len(rows_new)
    return PairedMoments(gram, cross, sum_new, sum_old, count)
