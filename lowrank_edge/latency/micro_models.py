"""Micro-models of one layer as it sits in its graph: the layer alone, or its factor pair.

Each takes the layer's input shape and holds a copy of the layer (same config and weights), or
the two layers `compress.split.split_layer` makes from its plain SVD factors at rank r. The
ranks on offer are 1, 2, 4 and the multiples of 8, up to the break-even r*(m+n) < m*n.
"""

from __future__ import annotations

import keras

from lowrank_edge.compress.split import split_layer
from lowrank_edge.latency.layer_signature import LayerSignature

SMALL_RANKS = (1, 2, 4)
RANK_STEP = 8


def kit_ranks(matrix_shape: tuple[int, int]) -> list[int]:
    """1, 2, 4 and multiples of 8 whose factor pair has fewer weights than the (m, n) kernel."""
    m, n = matrix_shape
    limit = min(m, n)
    candidates = {*SMALL_RANKS, *range(RANK_STEP, limit + 1, RANK_STEP)}
    return sorted(r for r in candidates if r <= limit and r * (m + n) < m * n)


def _copy(layer: keras.layers.Layer) -> keras.layers.Layer:
    config = layer.get_config()
    for key in ("lora_rank", "lora_alpha"):
        config.pop(key, None)
    return type(layer).from_config(config)


def dense_micro_model(layer: keras.layers.Layer, signature: LayerSignature) -> keras.Model:
    """The layer alone (a copy with its weights) on an input of the signature's shape."""
    inputs = keras.Input(shape=signature.input_shape)
    copy = _copy(layer)
    model = keras.Model(inputs, copy(inputs), name="dense")
    copy.set_weights(layer.get_weights())
    return model


def pair_micro_model(
    layer: keras.layers.Layer, signature: LayerSignature, rank: int
) -> keras.Model:
    """The layer's plain-SVD factor pair at `rank` on an input of the signature's shape."""
    split = split_layer(layer, rank)
    inputs = keras.Input(shape=signature.input_shape)
    outputs = inputs
    for part in split.layers:
        outputs = part(outputs)
    model = keras.Model(inputs, outputs, name=f"rank{rank}")
    for part, weights in zip(split.layers, split.weights, strict=True):
        part.set_weights(weights)
    return model
