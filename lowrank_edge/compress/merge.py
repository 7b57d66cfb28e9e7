"""Merge a compressed model's factor pairs back into the original model's dense layers.

The result has the original's architecture and the compressed model's (possibly fine-tuned)
function: each `<name>_lr_a` / `<name>_lr_b` pair becomes `<name>` with kernel A·B and the
pair's bias, and every other layer takes the compressed model's weights. Its kernels have
rank at most the pair's rank, so compressing it again at a lower budget re-truncates the
factors, data-aware, on the current weights (the rank schedule does this).
"""

from __future__ import annotations

from collections.abc import Iterator

import keras
import numpy as np

from lowrank_edge.compress.rebuild import rebuild_model
from lowrank_edge.compress.split import FIRST_SUFFIX, SECOND_SUFFIX
from lowrank_edge.errors import CompressionError


def merge_factor_pair(kernel_a: np.ndarray, kernel_b: np.ndarray) -> np.ndarray:
    """The dense kernel A·B of a factor pair (Conv2D: (kh, kw, cin, r) and (1, 1, r, cout);
    Dense: (in, r) and (r, out))."""
    return np.tensordot(kernel_a, kernel_b.reshape(kernel_b.shape[-2:]), axes=1)


def _layers_by_name(model: keras.Model, prefix: str = "") -> Iterator[tuple[str, object]]:
    """(path, layer) for every layer, nested models walked (their own path included)."""
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        yield path, layer
        if isinstance(layer, keras.Model):
            yield from _layers_by_name(layer, f"{path}/")


def merged_model(original: keras.Model, compressed: keras.Model) -> keras.Model:
    """A copy of `original` carrying `compressed`'s weights, factor pairs merged (see module).

    Neither input is modified. Raises CompressionError naming the layer when `compressed` is
    not a compression of `original` (a layer missing, or weights of another shape).
    """
    merged = rebuild_model(original, {})
    source = dict(_layers_by_name(compressed))
    for path, layer in _layers_by_name(merged):
        if isinstance(layer, keras.Model) or not layer.weights:
            continue
        if path in source:
            weights = source[path].get_weights()
        elif path + FIRST_SUFFIX in source and path + SECOND_SUFFIX in source:
            first = source[path + FIRST_SUFFIX].get_weights()
            second = source[path + SECOND_SUFFIX].get_weights()
            weights = [merge_factor_pair(first[0], second[0]).astype(first[0].dtype)]
            weights += second[1:]  # the bias, when the layer has one
        else:
            raise CompressionError(
                f"layer '{path}' of the original model is neither in the compressed model nor "
                f"split there into '{path}{FIRST_SUFFIX}' and '{path}{SECOND_SUFFIX}'"
            )
        want = [tuple(w.shape) for w in layer.get_weights()]
        got = [tuple(np.shape(w)) for w in weights]
        if want != got:
            raise CompressionError(
                f"layer '{path}': the compressed model's weights have shapes {got}, the "
                f"original's {want}"
            )
        layer.set_weights(weights)
    return merged
