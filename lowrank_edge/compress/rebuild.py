"""Rebuild a Sequential/Functional model with some layers replaced by chains of new layers.

Every layer is cloned from its config and gets a copy of its weights (BatchNorm moving
statistics included), so the input model is never touched and shares no variables with the
result. Nested sub-models are rebuilt recursively; a layer or sub-model used several times is
cloned once, so a shared layer's replacement chain is shared too. Raw `keras.ops` nodes (no
weights) are re-applied unchanged. Functional graphs go
through `keras.models.clone_model(clone_function=..., call_function=...)`; a Sequential is
re-listed with each replaced layer expanded in place. A compiled model's compile config
(loss, metrics, a fresh optimizer) is carried over, as `clone_model` does.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras
import numpy as np

from lowrank_edge.compress.graph import check_graph_model, is_graph_model, is_raw_op
from lowrank_edge.compress.split import LayerSplit
from lowrank_edge.errors import CompressionError


class _Rebuilder:
    """Clones layers once each (by identity) and remembers the weights to set afterwards."""

    def __init__(self, splits: Mapping[int, LayerSplit]):
        self.splits = splits
        self.clones: dict[int, object] = {}
        self.pending: list[tuple[keras.layers.Layer, list[np.ndarray]]] = []

    def clone(self, layer: keras.layers.Layer):
        if id(layer) not in self.clones:
            self.clones[id(layer)] = self._clone_new(layer)
        return self.clones[id(layer)]

    def _clone_new(self, layer: keras.layers.Layer):
        if isinstance(layer, keras.Sequential):
            return self.rebuild_sequential(layer)
        if is_graph_model(layer):
            return self.rebuild_functional(layer)
        if is_raw_op(layer):  # stateless: the same operation is called on the new tensors
            return layer
        split = self.splits.get(id(layer))
        if split is not None:
            self.pending.extend(zip(split.layers, split.weights, strict=True))
            return split
        try:
            new = layer.__class__.from_config(layer.get_config())
        except Exception as exc:  # a layer Keras cannot clone from its config
            raise CompressionError(
                f"cannot clone layer '{layer.name}' ({type(layer).__name__}) from its config: {exc}"
            ) from exc
        self.pending.append((new, layer.get_weights()))
        return new

    @staticmethod
    def call(op, *args, **kwargs):
        if isinstance(op, LayerSplit):
            out = op.layers[0](*args, **kwargs)
            for later in op.layers[1:]:
                out = later(out)
            return out
        return op(*args, **kwargs)

    def rebuild_functional(self, model: keras.Model) -> keras.Model:
        return keras.models.clone_model(model, clone_function=self.clone, call_function=self.call)

    def rebuild_sequential(self, model: keras.Sequential) -> keras.Sequential:
        check_graph_model(model)
        new_layers: list[keras.layers.Layer] = []
        for layer in model.layers:
            new = self.clone(layer)
            new_layers.extend(new.layers if isinstance(new, LayerSplit) else [new])
        spec = model.inputs[0]
        inputs = keras.Input(batch_shape=spec.shape, dtype=spec.dtype, name=spec.name)
        new = keras.Sequential([inputs, *new_layers], name=model.name, trainable=model.trainable)
        if model.compiled:  # as clone_model does for Functional models
            new.compile_from_config(model.get_compile_config())
        return new

    def set_weights(self) -> None:
        for layer, weights in self.pending:
            layer.set_weights(weights)


def rebuild_model(model: keras.Model, splits: Mapping[int, LayerSplit]) -> keras.Model:
    """A copy of `model` in which each layer whose id is in `splits` is replaced by its chain."""
    check_graph_model(model)
    rebuilder = _Rebuilder(splits)
    new_model = rebuilder.clone(model)
    rebuilder.set_weights()
    return new_model
