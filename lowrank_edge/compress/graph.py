"""Walk a Sequential/Functional Keras model call by call, nested sub-models expanded.

The cost model and the compressor both need every call of every leaf layer with its
input/output shapes (a shared layer has one call per use). Keras keeps the graph in
`Functional._nodes_by_depth` (a Sequential keeps a Functional in `_functional`); this is
the one module that reads those private attributes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import keras
from keras.src.models.functional import Functional

from lowrank_edge.errors import CompressionError

Shape = tuple[int | None, ...]


@dataclass(frozen=True, eq=False)
class LayerCall:
    """One call of a leaf layer: its path (`outer/inner/layer` for nested models) and shapes."""

    path: str
    layer: keras.layers.Layer
    input_shapes: tuple[Shape, ...]
    output_shapes: tuple[Shape, ...]


def is_graph_model(layer: object) -> bool:
    """True for Sequential and Functional models (the kinds whose graph can be rebuilt)."""
    return isinstance(layer, (keras.Sequential, Functional))


def check_graph_model(model: object) -> None:
    """Raise a clear error unless `model` is a built Sequential or Functional Keras model."""
    if not is_graph_model(model):
        kind = type(model).__name__
        raise CompressionError(
            f"expected a Sequential or Functional Keras model, got {kind}; subclassed models "
            "have no layer graph to rewrite"
        )
    if isinstance(model, keras.Sequential) and model._functional is None:
        raise CompressionError(
            f"Sequential model '{model.name}' is not built: give it a keras.Input or call it "
            "on data first"
        )


def _nodes(model: keras.Model) -> Iterator:
    graph = model._functional if isinstance(model, keras.Sequential) else model
    for depth in sorted(graph._nodes_by_depth, reverse=True):  # inputs first
        yield from graph._nodes_by_depth[depth]


def _shapes(tensors) -> tuple[Shape, ...]:
    return tuple(tuple(t.shape) for t in keras.tree.flatten(tensors))


def layer_calls(model: keras.Model, prefix: str = "") -> list[LayerCall]:
    """Every call of every leaf layer in graph order; nested models are walked per call."""
    check_graph_model(model)
    calls: list[LayerCall] = []
    for node in _nodes(model):
        op = node.operation
        if op is None or node.is_input or isinstance(op, keras.layers.InputLayer):
            continue
        path = f"{prefix}{op.name}"
        if is_graph_model(op):
            calls.extend(layer_calls(op, prefix=f"{path}/"))
        else:
            calls.append(LayerCall(path, op, _shapes(node.input_tensors), _shapes(node.outputs)))
    return calls


def sample_elements(shape: Shape, path: str) -> int:
    """Elements of one sample of `shape` (batch axis dropped); unknown sizes are an error."""
    dims = shape[1:]
    if any(d is None for d in dims):
        raise CompressionError(
            f"layer '{path}' has shape {shape} with unknown dimensions; its MACs cannot be "
            "counted: build the model with a fixed input shape"
        )
    return math.prod(dims)


def group_by_layer(calls: list[LayerCall]) -> list[list[LayerCall]]:
    """Group calls by layer object (first-seen order); a shared layer gets one group."""
    groups: dict[int, list[LayerCall]] = {}
    for call in calls:
        groups.setdefault(id(call.layer), []).append(call)
    return list(groups.values())
