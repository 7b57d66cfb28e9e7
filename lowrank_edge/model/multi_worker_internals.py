"""Every private Keras and TensorFlow API multi-worker training uses (the only module to do so
besides `compress/keras_internals.py`).

The coordination service: `configure_coordination_service` has no argument for
`cluster_register_with_barrier`, so `register_with_barrier` sets it on the config the context
keeps (`Context._coordination_service_config`). Without it worker 0 alone waits forever.

Keras 3 `fit` under `MultiWorkerMirroredStrategy`: two upstream bugs, patched for one fit.
Keras 3.15 (and its master as of 2026-08) cannot `fit` under that strategy; upstream tracks it
as tensorflow/tensorflow#72388. Two places fail:

1. `TensorFlowTrainer._maybe_symbolic_build` all-reduces the first input batch (a `PerReplica`)
   to build the model's variables: "Attempt to convert a value (PerReplica...) to a Tensor".
   Building needs only shapes, so this replica's own batch serves.
2. `reduce_per_replica` reduces each step's metrics with `strategy.reduce("MEAN", v, axis=0)`:
   the metrics are scalars, so "Invalid reduction dimension 0 for input with 0 dimensions".
   Keras' metrics are already synchronised across workers (their variables are
   ON_READ-aggregated by the strategy), so a plain tensor is kept as it is and a `PerReplica`
   is averaged over all replicas (`axis=None`).

`patched_for(strategy)` applies both replacements only while one `fit` runs under a
multi-worker strategy, and only to the two functions named, so nothing else in Keras changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from unittest import mock


def register_with_barrier(context) -> None:
    """Make every task, worker 0 included, wait at start-up until all have registered (or the
    registration timeout passes) on the coordination service `context` was configured with."""
    context._coordination_service_config.cluster_register_with_barrier = True


def is_multi_worker(strategy) -> bool:
    """True for a `MultiWorkerMirroredStrategy` (the strategy these patches are for)."""
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def patched_for(strategy):
    """A context manager: the two patches during a `fit` under `strategy` when it is
    multi-worker, else nothing."""
    return _patched() if strategy is not None and is_multi_worker(strategy) else nullcontext()


@contextmanager
def _patched() -> Iterator[None]:
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer

    original_reduce = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean"):
            return original_reduce(values, strategy, reduction)
        return tf.nest.map_structure(lambda v: _mean_over_replicas(v, strategy), values)

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = _local_values(next(batches), self.distribute_strategy)
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    with (
        mock.patch.object(trainer, "reduce_per_replica", reduce_per_replica),
        mock.patch.object(trainer.TensorFlowTrainer, "_maybe_symbolic_build", maybe_symbolic_build),
    ):
        yield


def _mean_over_replicas(value, strategy):
    """A `PerReplica` averaged over every replica of every worker; a tensor as it is."""
    import tensorflow as tf

    if isinstance(value, tf.distribute.DistributedValues):
        return strategy.reduce("MEAN", value, axis=None)
    return value


def _local_values(batch, strategy):
    """This process's first replica's part of a distributed batch (plain values unchanged)."""
    import tensorflow as tf

    def local(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    return tf.nest.map_structure(local, batch)
