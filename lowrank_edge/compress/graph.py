"""Walk a Sequential/Functional Keras model call by call, nested sub-models expanded.

The cost model and the compressor both need every call of every leaf layer with its
input/output shapes (a shared layer has one call per use). Raw `keras.ops` nodes in a
Functional graph (`x + 3.`, `x * (1 / 6)`: operations that are not Layers) hold no weights, so
they are left out: they cost nothing, are never candidates, and a rebuild re-applies them as
they are. Keras keeps the graph in private attributes; `keras_internals` is the one module that
reads them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras

from lowrank_edge.compress.keras_internals import (
    graph_nodes,
    is_functional,
    node_call,
    sequential_graph,
)
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
    return isinstance(layer, keras.Sequential) or is_functional(layer)


def is_raw_op(op: object) -> bool:
    """True for a graph node's raw `keras.ops` operation (not a Layer: no weights, no config)."""
    return not isinstance(op, keras.layers.Layer)


def check_graph_model(model: object) -> None:
    """Raise a clear error unless `model` is a built Sequential or Functional Keras model."""
    if not is_graph_model(model):
        kind = type(model).__name__
        raise CompressionError(
            f"expected a Sequential or Functional Keras model, got {kind}; subclassed models "
            "have no layer graph to rewrite"
        )
    if isinstance(model, keras.Sequential) and sequential_graph(model) is None:
        raise CompressionError(
            f"Sequential model '{model.name}' is not built: give it a keras.Input or call it "
            "on data first"
        )


def _shapes(tensors) -> tuple[Shape, ...]:
    return tuple(tuple(t.shape) for t in keras.tree.flatten(tensors))


def layer_calls(model: keras.Model, prefix: str = "") -> list[LayerCall]:
    """Every call of every leaf layer in graph order; nested models are walked per call.

    Raw `keras.ops` nodes are skipped (see the module docstring).
    """
    check_graph_model(model)
    calls: list[LayerCall] = []
    for node in graph_nodes(model):
        op, is_input, input_tensors, outputs = node_call(node)
        if op is None or is_input or is_raw_op(op) or isinstance(op, keras.layers.InputLayer):
            continue
        path = f"{prefix}{op.name}"
        if is_graph_model(op):
            calls.extend(layer_calls(op, prefix=f"{path}/"))
        else:
            calls.append(LayerCall(path, op, _shapes(input_tensors), _shapes(outputs)))
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
