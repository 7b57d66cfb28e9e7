"""Run a model's graph step by step (one leaf layer call per step), freeing each tensor after
its last reader, so a caller can stop before any layer, look at its input, and go on.

Keras runs a whole model per call and keeps every intermediate tensor until it returns. The
calibration passes need less and more: less memory (only the tensors later steps still read),
and a way to run a graph in segments over all calibration images, so that a layer-by-layer fit
runs the model once instead of once per layer. Nested Sequential/Functional sub-models are
expanded into their leaf calls; every tensor of the expanded graph gets an integer key, and
two graphs built from a model and its `rebuild_model` copy get the same keys.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import keras

from lowrank_edge.compress.graph import check_graph_model, is_graph_model
from lowrank_edge.compress.keras_internals import (
    graph_nodes,
    node_arguments,
    node_call,
    sequential_graph,
)
from lowrank_edge.errors import CompressionError


@dataclass(frozen=True, eq=False)
class Step:
    """One leaf call: its path, the operation, its graph node, the keys it reads and writes."""

    path: str
    op: Any
    node: Any
    reads: tuple[int, ...]  # one key per node.input_tensors, in that order
    writes: tuple[int, ...]  # one key per node output
    training_arg: bool  # whether the call takes `training` (it is run with training=False)


@dataclass(frozen=True)
class FlatGraph:
    """Every leaf call of a model in a valid execution order, with tensor keys."""

    steps: tuple[Step, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    last_read: Mapping[int, int]  # key -> index of its last reading step (outputs: len(steps))

    def positions(self, path: str) -> list[int]:
        """Indices of the steps that call the layer at `path` (one per call)."""
        return [i for i, step in enumerate(self.steps) if step.path == path]


def _graph_of(model: keras.Model):
    return sequential_graph(model) if isinstance(model, keras.Sequential) else model


def _takes_training(op: Any) -> bool:
    if not isinstance(op, keras.layers.Layer):
        return False
    try:
        return "training" in inspect.signature(op.call).parameters
    except (TypeError, ValueError):
        return False


def flat_graph(model: keras.Model) -> FlatGraph:
    """The leaf calls of a Sequential/Functional model, nested models expanded per call."""
    check_graph_model(model)
    counter = itertools.count()
    steps: list[Step] = []

    def walk(sub: keras.Model, scope: dict[int, int], prefix: str) -> None:
        for node in graph_nodes(sub):
            op, is_input, input_tensors, outputs = node_call(node)
            if op is None or is_input or isinstance(op, keras.layers.InputLayer):
                continue
            path = f"{prefix}{op.name}"
            reads = tuple(scope[id(t)] for t in input_tensors)
            if is_graph_model(op):
                graph = _graph_of(op)
                inner = {id(t): key for t, key in zip(graph.inputs, reads, strict=True)}
                walk(op, inner, f"{path}/")
                for outer, result in zip(outputs, graph.outputs, strict=True):
                    scope[id(outer)] = inner[id(result)]
                continue
            writes = []
            for tensor in outputs:
                scope[id(tensor)] = next(counter)
                writes.append(scope[id(tensor)])
            steps.append(Step(path, op, node, reads, tuple(writes), _takes_training(op)))

    graph = _graph_of(model)
    scope = {id(t): next(counter) for t in graph.inputs}
    inputs = tuple(scope[id(t)] for t in graph.inputs)
    walk(model, scope, "")
    outputs = tuple(scope[id(t)] for t in graph.outputs)
    last_read: dict[int, int] = {}
    for index, step in enumerate(steps):
        for key in step.reads:
            last_read[key] = index
    for key in outputs:
        last_read[key] = len(steps)
    return FlatGraph(tuple(steps), inputs, outputs, last_read)


def call_step(step: Step, values: Mapping[int, Any]) -> tuple[Any, ...]:
    """Run one step on `values` (keys to tensors); its outputs, one per written key."""
    tensors = step.node.input_tensors
    args, kwargs = node_arguments(step.node).fill_in(
        {id(t): values[key] for t, key in zip(tensors, step.reads, strict=True)}
    )
    if step.training_arg:
        kwargs["training"] = False
    outputs = keras.tree.flatten(step.op(*args, **kwargs))
    if len(outputs) != len(step.writes):
        raise CompressionError(
            f"layer '{step.path}' returned {len(outputs)} tensors, its graph node has "
            f"{len(step.writes)}"
        )
    return tuple(outputs)


StepHook = Callable[[int, Step, MutableMapping[int, Any]], None]


def run_steps(
    graph: FlatGraph,
    values: MutableMapping[int, Any],
    start: int = 0,
    stop: int | None = None,
    before: StepHook | None = None,
) -> MutableMapping[int, Any]:
    """Run steps [start, stop) on one batch, in place on `values` (keys to tensors).

    `before(index, step, values)` is called before each step. A tensor is dropped after its
    last reader; what is left at the end is what steps >= stop (or the outputs) still read.
    """
    stop = len(graph.steps) if stop is None else stop
    for index in range(start, stop):
        step = graph.steps[index]
        if before is not None:
            before(index, step, values)
        for key, value in zip(step.writes, call_step(step, values), strict=True):
            if graph.last_read.get(key, -1) > index:
                values[key] = value
        for key in set(step.reads):
            if graph.last_read.get(key, -1) <= index:
                values.pop(key, None)
    return values
