"""Paired moments for a layer-by-layer fit, in one pass of both models over the images.

A sequential fit needs, for each planned layer k in graph order, the moments of its inputs in
the working model (layers < k already replaced) paired with the original model's. Running
both whole models once per layer costs L forward passes of every image. Here both graphs run
segment by segment instead: the activations that later steps read are kept for all images
(float32, both models), each segment runs from them in batches, and at each planned layer the
caller gets its moments, may change the working layer's weights, and the next segment runs
with them. Memory: the tensors live across one cut, for all images, twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import keras
import numpy as np

from lowrank_edge.compress.calibration import (
    DEFAULT_BATCH,
    MomentSums,
    PairedMoments,
    add_inputs,
    model_inputs,
)
from lowrank_edge.compress.graph_run import FlatGraph, flat_graph, run_steps
from lowrank_edge.compress.shards import my_share
from lowrank_edge.compress.spectrum import kernel_matrix
from lowrank_edge.errors import CompressionError

Cache = dict[int, np.ndarray]


def streams(working: keras.Model, reference: keras.Model, paths: Sequence[str]) -> bool:
    """True when `sequential_moments` serves these paths: one input, each layer called once."""
    if len(reference.inputs) != 1:
        return False
    graph = flat_graph(reference)
    return all(len(graph.positions(p)) == 1 for p in paths)


def _run_segment(
    graph: FlatGraph, cache: Cache, start: int, stop: int, count: int, batch_size: int
) -> Cache:
    """Run steps [start, stop) over all images; the new tensors that steps >= stop read."""
    needed = {k for step in graph.steps[start:stop] for k in step.reads if k in cache}
    produced: Cache = {}
    for first in range(0, count, batch_size):
        part = slice(first, first + batch_size)
        values = run_steps(graph, {k: cache[k][part] for k in needed}, start, stop)
        for key, value in values.items():
            if key in cache:
                continue  # carried over from an earlier segment, already held whole
            value = np.asarray(value)
            if key not in produced:
                produced[key] = np.empty((count, *value.shape[1:]), dtype=value.dtype)
            produced[key][part] = value
    return produced


def _next_cache(graph: FlatGraph, cache: Cache, produced: Cache, stop: int) -> Cache:
    """The old tensors still read at or after `stop`, plus the new ones."""
    kept = {k: v for k, v in cache.items() if graph.last_read.get(k, -1) >= stop}
    return kept | produced


def sequential_moments(
    working: keras.Model,
    reference: keras.Model,
    images: np.ndarray,
    paths: Sequence[str],
    batch_size: int = DEFAULT_BATCH,
) -> Iterator[tuple[str, PairedMoments]]:
    """(path, moments of X^ in `working` paired with X in `reference`) for each path, in
    graph order. Between two items the caller may change the weights of the working layer
    just yielded: every later moment sees the change. `working` must be a copy of
    `reference` (same graph); each path must be a layer called once (see `streams`).
    """
    new_graph, old_graph = flat_graph(working), flat_graph(reference)
    if [s.path for s in new_graph.steps] != [s.path for s in old_graph.steps]:
        raise CompressionError("the working model's graph differs from the reference's")
    at = {p: old_graph.positions(p) for p in paths}
    if any(len(found) != 1 for found in at.values()):
        raise CompressionError(f"each fitted layer must be called once: {at}")
    x = model_inputs(reference, my_share(images))  # all of them unless multi-worker
    new = old = {old_graph.inputs[0]: x}
    start, changed = 0, False
    for path in sorted(paths, key=lambda p: at[p][0]):
        stop = at[path][0]
        produced = _run_segment(old_graph, old, start, stop, len(x), batch_size)
        old_next = _next_cache(old_graph, old, produced, stop)
        if changed:
            produced = _run_segment(new_graph, new, start, stop, len(x), batch_size)
            new = _next_cache(new_graph, new, produced, stop)
        else:  # nothing replaced yet: the working model's tensors are the reference's
            new = old_next
        old = old_next
        step, ref_step = new_graph.steps[stop], old_graph.steps[stop]
        sums = MomentSums(kernel_matrix(ref_step.op.kernel.numpy()))
        key = step.reads[0]
        for first in range(0, len(x), batch_size):
            part = slice(first, first + batch_size)
            add_inputs(sums, step.op, new[key][part], old[key][part])
        yield path, sums.summed_over_workers().paired()
        start, changed = stop, True
