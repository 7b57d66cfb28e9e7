"""Calibration over several workers: each sums its own share of the images, then all add up.

The statistics data-aware compression reads are sums over calibration rows: the input second
moments X^T X, the cross moments of the layer-by-layer fit, the column sums and row counts, and
BatchNorm's per-channel sums. Under `--distribute multi-worker` every worker takes every
`count`-th image from its own `index` on (`my_share`), accumulates those sums, and adds them
with the strategy's all-reduce (`Shards.total`); every worker then holds the sums over all the
images, so the rank plan and the fitted factors come out the same as in one process (up to
float64 rounding), and worker 0 writes them. Outside `sharded_calibration` nothing changes.

The shards are scoped like `strategy.scope()`: a context variable set by the command for its
run, so the many functions between the command and the sums need no extra argument.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np

from lowrank_edge.errors import CompressionError


@dataclass(frozen=True)
class Shards:
    """This worker's place among `count` workers, and the all-reduce that sums an array
    (same shape on every worker) over all of them."""

    index: int
    count: int
    total: Callable[[np.ndarray], np.ndarray]


_CURRENT: ContextVar[Shards | None] = ContextVar("lowrank_edge_calibration_shards", default=None)


@contextmanager
def sharded_calibration(shards: Shards | None) -> Iterator[None]:
    """Calibrate on this worker's share of the images, summed over `shards` (None: alone)."""
    token = _CURRENT.set(shards)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def my_share(images: np.ndarray) -> np.ndarray:
    """The calibration images this worker accumulates: all of them when alone."""
    shards = _CURRENT.get()
    if shards is None:
        return images
    if len(images) < shards.count:
        raise CompressionError(
            f"calibration on {shards.count} workers needs at least {shards.count} images, "
            f"got {len(images)}"
        )
    return images[shards.index :: shards.count]


def summed(*values: np.ndarray | float) -> tuple[np.ndarray, ...]:
    """Each value summed over the workers (float64), in order; as it is when alone. Every
    worker must call this the same number of times with the same shapes."""
    shards = _CURRENT.get()
    arrays = tuple(np.asarray(v, dtype=np.float64) for v in values)
    if shards is None:
        return arrays
    return tuple(np.asarray(shards.total(a), dtype=np.float64) for a in arrays)
