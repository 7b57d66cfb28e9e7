"""Build the two stock Keras layers that replace a Conv2D or Dense layer at rank r.

Conv2D(cout, (kh, kw), strides, padding, dilation, data_format, activation, bias) becomes
  `<name>_lr_a`: Conv2D(r, (kh, kw), same strides/padding/dilation/data_format, linear, no bias)
  `<name>_lr_b`: Conv2D(cout, 1x1, the original activation and bias).
Dense(out, activation, bias) becomes `<name>_lr_a`: Dense(r, linear, no bias) and
`<name>_lr_b`: Dense(out, the original activation and bias).
Dtype policy and trainable flag are copied to both. Kernel regularizers/constraints are
defined on the full kernel and are not carried over; bias and activity regularizers and bias
constraints stay on the second factor.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from lowrank_edge.compress.factor import split_kernel

FIRST_SUFFIX = "_lr_a"
SECOND_SUFFIX = "_lr_b"

_NO_KERNEL_EXTRAS = {"kernel_regularizer": None, "kernel_constraint": None}
_LINEAR_NO_BIAS = {
    "activation": "linear",
    "use_bias": False,
    "bias_regularizer": None,
    "bias_constraint": None,
    "activity_regularizer": None,
}


@dataclass(frozen=True, eq=False)
class LayerFactors:
    """Precomputed factor kernels for one layer, in the shapes `split_kernel` returns.

    `bias` replaces the layer's own bias on the second factor when given (a data-aware fit
    may correct it); None keeps the original bias.
    """

    kernel_a: np.ndarray
    kernel_b: np.ndarray
    bias: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class LayerSplit:
    """A chain of new (unbuilt) layers replacing one layer, with the weights for each."""

    layers: tuple[keras.layers.Layer, ...]
    weights: tuple[list[np.ndarray], ...]


def _base_config(layer: keras.layers.Layer) -> dict:
    config = layer.get_config()
    for key in ("lora_rank", "lora_alpha"):
        config.pop(key, None)
    config.update(_NO_KERNEL_EXTRAS)
    return config


def _check_factors(layer: keras.layers.Layer, rank: int, factors: LayerFactors) -> None:
    kernel = tuple(layer.kernel.shape)
    ones = (1,) * (len(kernel) - 2)
    want_a, want_b = (*kernel[:-1], rank), (*ones, rank, kernel[-1])
    got_a, got_b = tuple(np.shape(factors.kernel_a)), tuple(np.shape(factors.kernel_b))
    if (got_a, got_b) != (want_a, want_b):
        raise ValueError(
            f"layer '{layer.name}': factors at rank {rank} must have shapes {want_a} and "
            f"{want_b}, got {got_a} and {got_b}"
        )


def split_layer(
    layer: keras.layers.Layer, rank: int, factors: LayerFactors | None = None
) -> LayerSplit:
    """The factor pair for a stock Conv2D (groups=1) or Dense layer at `rank`, weights set.

    The weights are the plain SVD factors of the kernel unless `factors` gives them.
    """
    kind = type(layer)
    if kind not in (keras.layers.Conv2D, keras.layers.Dense):
        raise TypeError(f"can only split Conv2D or Dense, got {kind.__name__}")
    if factors is None:
        kernel_a, kernel_b = split_kernel(layer.kernel.numpy(), rank)
        bias = None
    else:
        _check_factors(layer, rank, factors)
        dtype = layer.kernel.numpy().dtype
        kernel_a = np.asarray(factors.kernel_a, dtype=dtype)
        kernel_b = np.asarray(factors.kernel_b, dtype=dtype)
        bias = factors.bias
    size_key = "filters" if kind is keras.layers.Conv2D else "units"

    first = {**_base_config(layer), **_LINEAR_NO_BIAS, size_key: rank}
    first["name"] = f"{layer.name}{FIRST_SUFFIX}"
    second = {**_base_config(layer), "name": f"{layer.name}{SECOND_SUFFIX}"}
    if kind is keras.layers.Conv2D:
        second.update(
            kernel_size=(1, 1), strides=(1, 1), padding="valid", dilation_rate=(1, 1), groups=1
        )
    second_weights = [kernel_b]
    if layer.use_bias:
        original = layer.bias.numpy()
        second_weights.append(original if bias is None else np.asarray(bias, original.dtype))
    return LayerSplit(
        layers=(kind.from_config(first), kind.from_config(second)),
        weights=([kernel_a], second_weights),
    )
