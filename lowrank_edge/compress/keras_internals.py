"""Every private Keras API the package uses, behind small accessors (the only module to do so).

Keras has no public way to walk a model's layer-call graph, so the compressor reads it from
the private `Functional` class (`_nodes_by_depth`; a built Sequential keeps one in
`_functional`) and the `Node`s in it. Each accessor fails with a CompressionError naming the
attribute and the installed Keras version, and `check_private_api()` exercises them all on a
tiny model (the test suite runs it, so a Keras upgrade that moves one fails there first).
setup.cfg pins Keras to the minor versions this was tested on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras

from lowrank_edge.errors import CompressionError

# What is used, and why: the names `check_private_api()` (and its test) check.
PRIVATE_API: dict[str, str] = {
    "keras.src.models.functional.Functional": "the class of Functional models (no public alias)",
    "Sequential._functional": "the Functional graph a built Sequential model keeps",
    "Functional._nodes_by_depth": "the layer calls of a Functional model, by graph depth",
    "Node.operation": "the layer a graph node calls",
    "Node.is_input": "whether a graph node is a model input",
    "Node.input_tensors": "the tensors a graph node's call takes",
    "Node.outputs": "the tensors a graph node's call returns",
    "Node.arguments": "a graph node's call arguments, to replay the call on new values",
}


def _missing(name: str, detail: str = "") -> CompressionError:
    why = f" ({detail})" if detail else ""
    return CompressionError(
        f"private Keras API {name} is missing in the installed Keras {keras.__version__}{why}; "
        "lowrank-edge needs it to walk the model graph: install the Keras version pinned in "
        "setup.cfg"
    )


def functional_class() -> type:
    """`keras.src.models.functional.Functional`, the class of Functional models."""
    try:
        from keras.src.models.functional import Functional
    except ImportError as error:
        raise _missing("keras.src.models.functional.Functional", str(error)) from error
    return Functional


def is_functional(model: object) -> bool:
    """True for Functional models (Sequential ones are not)."""
    return isinstance(model, functional_class())


def sequential_graph(model: keras.Sequential) -> Any | None:
    """The Functional graph a Sequential model keeps (None until the model is built)."""
    try:
        return model._functional
    except AttributeError as error:
        raise _missing("Sequential._functional") from error


def nodes_by_depth(graph: Any) -> dict[int, list[Any]]:
    """A Functional model's graph nodes, keyed by depth (0 = the outputs)."""
    try:
        return graph._nodes_by_depth
    except AttributeError as error:
        raise _missing("Functional._nodes_by_depth") from error


def graph_nodes(model: keras.Model) -> Iterator[Any]:
    """The nodes of a built Sequential or Functional model, inputs first."""
    graph = sequential_graph(model) if isinstance(model, keras.Sequential) else model
    if graph is None:
        raise CompressionError(f"Sequential model '{model.name}' is not built")
    by_depth = nodes_by_depth(graph)
    for depth in sorted(by_depth, reverse=True):
        yield from by_depth[depth]


def node_call(node: Any) -> tuple[Any, bool, Any, Any]:
    """A node's (operation, is_input, input_tensors, outputs)."""
    values = []
    for attribute in ("operation", "is_input", "input_tensors", "outputs"):
        try:
            values.append(getattr(node, attribute))
        except AttributeError as error:
            raise _missing(f"Node.{attribute}") from error
    operation, is_input, input_tensors, outputs = values
    return operation, bool(is_input), input_tensors, outputs


def node_arguments(node: Any) -> Any:
    """A node's call arguments; `.fill_in({id(keras_tensor): value})` gives (args, kwargs)."""
    try:
        return node.arguments
    except AttributeError as error:
        raise _missing("Node.arguments") from error


def check_private_api() -> None:
    """Use every entry of PRIVATE_API on a tiny Sequential model; a clear error if one is gone."""
    inputs = keras.Input((3,), name="probe_input")
    model = keras.Sequential([inputs, keras.layers.Dense(2, name="probe_dense")])
    graph = sequential_graph(model)
    if not is_functional(graph):
        raise _missing("Sequential._functional", f"it holds a {type(graph).__name__}")
    calls = [node_call(node) for node in graph_nodes(model)]
    for node in graph_nodes(model):
        node_arguments(node)
    if not any(op is not None and op.name == "probe_dense" for op, *_ in calls):
        raise _missing(
            "Functional._nodes_by_depth", "the probe model's Dense call is not among its nodes"
        )
