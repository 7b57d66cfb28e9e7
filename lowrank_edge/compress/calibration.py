"""Calibration statistics: second moments of each layer's inputs on a few training images.

A layer's kernel matrix W (m, n) multiplies rows of length m: the input vector for a Dense, the
im2col patch (kh, kw, cin flattened as the kernel is) for a Conv2D, taken with the layer's own
stride, padding and dilation. The data-aware factoriser needs X^T X over those rows (and, layer
by layer, the cross moment between the inputs of the compressed and the original model). The
graph runs step by step (`graph_run`), batch by batch, and each layer's rows are reduced in
chunks of a few images (float32 products, float64 sums), so memory stays bounded by one batch
and one chunk; `capture_inputs` (wrapping a layer's `call`) serves the whole-model fallback.
Under multi-worker each worker sums its share of the images and the sums are added up
(`shards`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import keras
import numpy as np

from lowrank_edge.compress.graph import group_by_layer, layer_calls
from lowrank_edge.compress.graph_run import flat_graph, run_steps
from lowrank_edge.compress.shards import my_share, summed
from lowrank_edge.errors import CompressionError

DEFAULT_CALIBRATION_IMAGES = 512
DEFAULT_BATCH = 64
CHUNK_ELEMENTS = 1 << 22  # values of kernel rows per matmul chunk (16 MiB in float32)


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


def _elements_per_image(layer: keras.layers.Layer, shape: tuple[int, ...]) -> int:
    """Elements of one image's kernel rows: its output positions times the kernel's rows m."""
    kernel_shape = tuple(layer.kernel.shape)
    out = layer.compute_output_shape((1, *shape[1:]))
    return int(np.prod(out[1:])) // kernel_shape[-1] * int(np.prod(kernel_shape[:-1]))


def row_chunks(
    layer: keras.layers.Layer, inputs: np.ndarray, max_elements: int = CHUNK_ELEMENTS
) -> Iterator[tuple[slice, np.ndarray]]:
    """(image slice, kernel rows) for consecutive groups of images whose rows hold at most
    `max_elements` values (one image at least): im2col never sees a whole batch at once."""
    step = max(1, max_elements // max(1, _elements_per_image(layer, inputs.shape)))
    for start in range(0, len(inputs), step):
        part = slice(start, start + step)
        yield part, kernel_rows(layer, inputs[part])


class MomentSums:
    """Running X^T X^ and, given the rows X of the original model, X^T X W and column sums.

    Each chunk's products are float32 matmuls (BLAS speed; float64 ones run ~5x slower
    here); they are added up across chunks in float64, so rounding does not grow with the
    number of images.
    """

    def __init__(self, kernel: np.ndarray | None = None):
        self.kernel = None if kernel is None else np.asarray(kernel, dtype=np.float64)
        self.gram = self.cross = self.sum_new = self.sum_old = 0.0
        self.count = 0
        # X^T (X W) costs 2*m*n per row, (X^T X) then W costs m*m: take the cheaper
        self.cross_first = kernel is not None and kernel.shape[0] <= 2 * kernel.shape[1]

    def add(self, rows_new: np.ndarray, rows_old: np.ndarray | None = None) -> None:
        """Add one chunk of rows (float32), paired row by row when `rows_old` is given."""
        rows_new = np.asarray(rows_new, dtype=np.float32)
        self.gram = self.gram + (rows_new.T @ rows_new).astype(np.float64)
        self.sum_new = self.sum_new + rows_new.sum(axis=0, dtype=np.float64)
        self.count += len(rows_new)
        if rows_old is None:
            return
        rows_old = np.asarray(rows_old, dtype=np.float32)
        if self.cross_first:
            chunk = rows_new.T @ rows_old
        else:
            chunk = rows_new.T @ (rows_old @ self.kernel.astype(np.float32))
        self.cross = self.cross + chunk.astype(np.float64)
        self.sum_old = self.sum_old + rows_old.sum(axis=0, dtype=np.float64)

    def summed_over_workers(self) -> MomentSums:
        """These sums added up over all workers (`shards`), in place; unchanged when alone."""
        *sums, count = summed(self.gram, self.cross, self.sum_new, self.sum_old, self.count)
        self.gram, self.cross, self.sum_new, self.sum_old = sums
        self.count = int(round(float(count)))
        return self

    def paired(self) -> PairedMoments:
        """The accumulated moments of paired rows (X^, X) of a layer with kernel W."""
        cross = self.cross @ self.kernel if self.cross_first else self.cross
        return PairedMoments(self.gram, cross, self.sum_new, self.sum_old, self.count)


def add_inputs(sums: MomentSums, layer, inputs, old_inputs=None) -> None:
    """Add a batch of `layer`'s inputs (and the original model's, paired) to `sums`."""
    inputs = np.asarray(inputs)
    old_inputs = None if old_inputs is None else np.asarray(old_inputs)
    for part, rows in row_chunks(layer, inputs):
        sums.add(rows, None if old_inputs is None else kernel_rows(layer, old_inputs[part]))


def input_grams(
    model: keras.Model,
    images: np.ndarray,
    paths: Sequence[str],
    batch_size: int = DEFAULT_BATCH,
) -> dict[str, np.ndarray]:
    """{path: X^T X} (float64) of each listed layer's kernel rows, in one pass over `images`.

    The graph runs step by step, so only the tensors later layers read are held at a time.
    """
    layers = layers_by_path(model)
    missing = [p for p in paths if p not in layers]
    if missing:
        raise CompressionError(f"model '{model.name}' has no layer(s) {missing}")
    graph = flat_graph(model)
    sums = {p: MomentSums() for p in paths}

    def accumulate(index, step, values):
        if step.path in sums:
            add_inputs(sums[step.path], step.op, values[step.reads[0]])

    stop = max(i for p in paths for i in graph.positions(p)) + 1 if paths else 0
    for batch in batches(model_inputs(model, my_share(images)), batch_size):
        run_steps(graph, {graph.inputs[0]: batch}, 0, stop, before=accumulate)
    sums = {p: s.summed_over_workers() for p, s in sums.items()}
    return {p: s.gram for p, s in sums.items() if s.count}


def model_inputs(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """`images` in the dtype of the model's (single) input, as Keras would cast them."""
    inputs = model.inputs
    if len(inputs) != 1:
        raise CompressionError(
            f"calibration needs a model with one input; '{model.name}' has {len(inputs)}"
        )
    return np.asarray(images, dtype=inputs[0].dtype)


@dataclass(frozen=True)
class PairedMoments:
    """Moments of one layer's kernel rows in a compressed model (X^) and the original (X),
    whose kernel is W (m, n)."""

    gram: np.ndarray  # X^T X^ (m, m)
    cross: np.ndarray  # X^T X W (n columns; rows from X^)
    sum_new: np.ndarray  # column sums of X^
    sum_old: np.ndarray  # column sums of X
    count: int  # rows

    def centered(self, kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(X^T X^, X^T X W) of the mean-removed rows: for a fit with an intercept (bias)."""
        mean_new, mean_old = self.sum_new / self.count, self.sum_old / self.count
        gram = self.gram - self.count * np.outer(mean_new, mean_new)
        cross = self.cross - self.count * np.outer(mean_new, mean_old @ kernel)
        return gram, cross


def paired_moments(
    model: keras.Model,
    reference: keras.Model,
    images: np.ndarray,
    path: str,
    batch_size: int = DEFAULT_BATCH,
) -> PairedMoments:
    """Moments of layer `path`'s rows: X^ in `model`, X in `reference` (kernel W from it).

    Both models see the same images in the same order, so row i of X^ and of X come from the
    same image and position. Each call runs both whole models: the reference for one layer
    (and for a layer called more than once); `layerwise.sequential_moments` serves a fit.
    """
    layer, ref_layer = layers_by_path(model)[path], layers_by_path(reference)[path]
    sums = MomentSums(ref_layer.kernel.numpy().reshape(-1, ref_layer.kernel.shape[-1]))
    for batch in batches(my_share(images), batch_size):
        with capture_inputs({path: layer}) as new, capture_inputs({path: ref_layer}) as old:
            model(batch, training=False)
            reference(batch, training=False)
        for x_new, x_old in zip(new[path], old[path], strict=True):
            add_inputs(sums, layer, x_new, x_old)
    return sums.summed_over_workers().paired()
