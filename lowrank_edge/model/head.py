"""What a classifier's head outputs: probabilities (a final softmax) or logits.

The fine-tuning loss must match it: cross-entropy on probabilities treated as logits is
wrong (and flat). The head is the layer or raw `keras.ops` node that makes the model's first
output, looked through layers that only move values (Flatten, Reshape, Dropout, linear
Activation ...) and into nested models, so MobileNetV3's `Logits` conv -> Flatten ->
Activation('softmax') and a Dense(activation='softmax') both read as probabilities.
"""

from __future__ import annotations

from typing import Any

import keras

from lowrank_edge.compress.graph import check_graph_model, is_graph_model, is_raw_op
from lowrank_edge.compress.keras_internals import graph_nodes, node_call

_PASS_THROUGH = (
    keras.layers.Flatten,
    keras.layers.Reshape,
    keras.layers.Dropout,
    keras.layers.Identity,
    keras.layers.Permute,
)


def _producers(model: keras.Model) -> dict[int, tuple[Any, Any]]:
    """{id(tensor): (operation, input tensors)} for every tensor a node of `model` makes."""
    found = {}
    for node in graph_nodes(model):
        op, is_input, inputs, outputs = node_call(node)
        if op is not None and not is_input:
            for tensor in keras.tree.flatten(outputs):
                found[id(tensor)] = (op, inputs)
    return found


def _activation_name(op: Any) -> str:
    if is_raw_op(op):
        return type(op).__name__.lower()  # keras.ops.softmax(x) is a `Softmax` operation
    if isinstance(op, keras.layers.Softmax):
        return "softmax"
    activation = getattr(op, "activation", None)
    if activation is None:
        return "linear"
    name = keras.activations.serialize(activation)
    return name if isinstance(name, str) else getattr(activation, "__name__", "linear")


def output_activation(model: keras.Model) -> str:
    """The activation that makes the model's first output ('softmax', 'linear', 'relu' ...)."""
    check_graph_model(model)
    producers = _producers(model)
    tensor = keras.tree.flatten(model.outputs)[0]
    while id(tensor) in producers:
        op, inputs = producers[id(tensor)]
        if is_graph_model(op):
            return output_activation(op)
        linear = isinstance(op, keras.layers.Activation) and _activation_name(op) == "linear"
        if not (isinstance(op, _PASS_THROUGH) or linear):
            return _activation_name(op)
        tensor = keras.tree.flatten(inputs)[0]
    return "linear"


def outputs_probabilities(model: keras.Model) -> bool:
    """True when the model ends in a softmax (probabilities), False for logits."""
    return output_activation(model) == "softmax"
