"""Training on `tf.distribute`: one process, the local devices, or workers named by TF_CONFIG.

`--distribute none` trains in this process as before; `mirrored` is `MirroredStrategy` over the
local devices; `multi-worker` would be `MultiWorkerMirroredStrategy`, configured by the standard
`TF_CONFIG` variable (cluster `worker` addresses and this process's `task`): TF_CONFIG is
checked, then the run is refused (`MULTI_WORKER_BLOCKED`: Keras 3.15's `fit` fails under that
strategy on its first batch). The model to train is cloned inside the strategy's scope (with the
teacher, optimizer and metrics built there by `fit`), trained on the global batch, and its weights
copied back, so the caller's model and everything around it stay as they are.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lowrank_edge.errors import LowrankEdgeError

DISTRIBUTE_CHOICES = ("none", "mirrored", "multi-worker")
MULTI_WORKER_BLOCKED = (
    "--distribute multi-worker is not available yet: with Keras 3.15 on TensorFlow 2.21, "
    "`fit` under MultiWorkerMirroredStrategy fails before its first step (its symbolic build "
    'all-reduces the first input batch: "Attempt to convert a value (PerReplica...) to a '
    'Tensor"); use --distribute mirrored on one machine'
)


def tf_config(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The parsed and checked `TF_CONFIG`: a `cluster` with a `worker` address list and a
    `task` naming this process ({"type": "worker", "index": i}). Errors name what is wrong."""
    environ = os.environ if environ is None else environ
    text = environ.get("TF_CONFIG")
    if not text:
        raise LowrankEdgeError(
            "--distribute multi-worker needs TF_CONFIG, e.g. "
            '{"cluster": {"worker": ["127.0.0.1:12345", "127.0.0.1:12346"]}, '
            '"task": {"type": "worker", "index": 0}}'
        )
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise LowrankEdgeError(f"TF_CONFIG is not JSON: {error}") from error
    workers = (config.get("cluster") or {}).get("worker") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(workers, list) or not workers or not all(isinstance(w, str) for w in workers):
        raise LowrankEdgeError('TF_CONFIG: cluster.worker must be a list of "host:port" addresses')
    if not isinstance(task, dict) or task.get("type") not in ("worker", "chief"):
        raise LowrankEdgeError('TF_CONFIG: task must be {"type": "worker", "index": i}')
    index = task.get("index")
    if task["type"] == "worker" and (not isinstance(index, int) or not 0 <= index < len(workers)):
        raise LowrankEdgeError(
            f"TF_CONFIG: task.index must be 0 to {len(workers) - 1} (one per worker), got {index!r}"
        )
    return config


@functools.cache
def make_strategy(kind: str):
    """The `tf.distribute` strategy for `kind`, or None for `none`; one per process and kind.

    TensorFlow configures the collectives of `MultiWorkerMirroredStrategy` when it is created,
    and refuses once other operations ran, so the commands create it first thing (`fit` then
    gets the same one); the cache is that process-wide fact, not configuration."""
    if kind not in DISTRIBUTE_CHOICES:
        raise LowrankEdgeError(
            f"--distribute must be one of {', '.join(DISTRIBUTE_CHOICES)}, got {kind!r}"
        )
    if kind == "none":
        return None
    import tensorflow as tf

    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    tf_config()  # a clear error before TensorFlow reads it
    raise LowrankEdgeError(MULTI_WORKER_BLOCKED)


def describe(strategy, kind: str, global_batch: int) -> str:
    """`mirrored: 2 replicas, global batch 128 (64 per replica)` for the logs."""
    replicas = strategy.num_replicas_in_sync
    return (
        f"{kind}: {replicas} replica(s), global batch {global_batch} "
        f"({global_batch // max(replicas, 1)} per replica)"
    )


@contextmanager
def replicas_of(models: list, strategy) -> Iterator[list]:
    """Clones of `models` (None stays None) built inside `strategy`'s scope, with their weights;
    on a clean exit the first clone's weights are copied back to the first model."""
    import keras

    with strategy.scope():
        clones = []
        for model in models:
            if model is None:
                clones.append(None)
                continue
            clone = keras.models.clone_model(model)
            clone.set_weights(model.get_weights())
            clones.append(clone)
        yield clones
    models[0].set_weights(clones[0].get_weights())


def sharded(dataset):
    """`dataset` with tf.data's auto-shard policy DATA: every worker reads its share of each
    batch's examples (the data live in memory or files every worker can read)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
