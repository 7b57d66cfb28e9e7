"""Training on `tf.distribute`: one process, the local devices, or workers named by TF_CONFIG.

`--distribute none` trains in this process as before; `mirrored` is `MirroredStrategy` over the
local devices; `multi-worker` is `MultiWorkerMirroredStrategy`, configured by the standard
`TF_CONFIG` variable (cluster `worker` addresses and this process's `task`). Worker 0 leads:
it writes every output (`is_chief`), and a worker that cannot reach its peers within
`peer_timeout_s` fails with an error naming their TF_CONFIG addresses. The model to train is
cloned inside the strategy's scope (with the teacher, optimizer and metrics built there by
`fit`), trained on the global batch, and its weights copied back, so the caller's model and
everything around it stay as they are.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from lowrank_edge.errors import LowrankEdgeError

if TYPE_CHECKING:
    import numpy as np

    from lowrank_edge.compress.shards import Shards

DISTRIBUTE_CHOICES = ("none", "mirrored", "multi-worker")
PEER_TIMEOUT_S = 60.0  # how long a worker waits for every peer to join (and to stay alive)


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
    if set(config["cluster"]) != {"worker"}:
        raise LowrankEdgeError(
            f"TF_CONFIG: cluster must list only `worker` addresses (worker 0 leads and writes "
            f"the outputs), got {sorted(config['cluster'])}"
        )
    if not isinstance(task, dict) or task.get("type") != "worker":
        raise LowrankEdgeError('TF_CONFIG: task must be {"type": "worker", "index": i}')
    index = task.get("index")
    if not isinstance(index, int) or not 0 <= index < len(workers):
        raise LowrankEdgeError(
            f"TF_CONFIG: task.index must be 0 to {len(workers) - 1} (one per worker), got {index!r}"
        )
    return config


def worker_place(environ: dict[str, str] | None = None) -> tuple[list[str], int]:
    """(every worker's address, this process's index) from the checked TF_CONFIG."""
    config = tf_config(environ)
    return config["cluster"]["worker"], config["task"]["index"]


def is_chief(kind: str, environ: dict[str, str] | None = None) -> bool:
    """True for the process that writes the outputs: always, unless `multi-worker` names this
    process a worker other than 0."""
    return kind != "multi-worker" or worker_place(environ)[1] == 0


def worker_folder(kind: str, folder: str, environ: dict[str, str] | None = None) -> str:
    """`folder` itself, or under multi-worker this worker's own `folder/worker-<i>` (workers
    back up the same state; one file written by two processes would be torn)."""
    if kind != "multi-worker":
        return folder
    return os.path.join(folder, f"worker-{worker_place(environ)[1]}")


def make_strategy(kind: str, peer_timeout_s: float = PEER_TIMEOUT_S):
    """The `tf.distribute` strategy for `kind`, or None for `none`; one per process and kind.

    TensorFlow configures the collectives of `MultiWorkerMirroredStrategy` when it is created,
    and a second one in the same process hangs in its first collective, so the commands
    create it first thing (`fit` then gets the same one); the cache is that process-wide fact,
    not configuration."""
    return _cached_strategy(kind, float(peer_timeout_s))


@functools.cache
def _cached_strategy(kind: str, peer_timeout_s: float):
    if kind not in DISTRIBUTE_CHOICES:
        raise LowrankEdgeError(
            f"--distribute must be one of {', '.join(DISTRIBUTE_CHOICES)}, got {kind!r}"
        )
    if kind == "none":
        return None
    import tensorflow as tf

    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    return _multi_worker_strategy(*worker_place(), peer_timeout_s)


def _multi_worker_strategy(workers: list[str], index: int, peer_timeout_s: float):
    """`MultiWorkerMirroredStrategy` whose start waits at most `peer_timeout_s` for every worker
    to register with worker 0 (TensorFlow's coordination service, with a barrier), and whose
    heartbeats declare a silent peer dead after the same time, so a run never hangs."""
    import tensorflow as tf
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.eager import context

    from lowrank_edge.model.multi_worker_internals import register_with_barrier

    milliseconds = int(peer_timeout_s * 1000)
    ctx = context.context()
    ctx.configure_coordination_service(
        service_type="standalone",
        service_leader="/job:worker/replica:0/task:0",
        coordinated_jobs=[
            coordination_config_pb2.CoordinatedJob(name="worker", num_tasks=len(workers))
        ],
        cluster_register_timeout_in_ms=milliseconds,
        heartbeat_timeout_in_ms=milliseconds,
    )
    # every task, the leader too, waits at start-up until all have registered (or times out);
    # without the barrier the leader alone waits forever in its first collective
    register_with_barrier(ctx)
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError) as error:
        raise LowrankEdgeError(
            f"worker {index} ({workers[index]}) could not reach its peers within "
            f"{peer_timeout_s:g} s: {_peers(workers, index)} (TF_CONFIG cluster.worker); start "
            f"the same command on every worker, or raise --peer-timeout ({type(error).__name__})"
        ) from error


@contextmanager
def peers_lost_named(kind: str, peer_timeout_s: float) -> Iterator[None]:
    """Under multi-worker, a peer that dies mid-run (its heartbeats stop for `peer_timeout_s`)
    aborts the collectives; this turns TensorFlow's error into one naming the lost workers'
    TF_CONFIG addresses and saying how to resume."""
    if kind != "multi-worker":
        yield
        return
    import tensorflow as tf

    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
            tf.errors.AbortedError, tf.errors.CancelledError) as error:  # fmt: skip
        workers, index = worker_place()
        lost = sorted({int(i) for i in re.findall(r"/job:worker/replica:0/task:(\d+)", str(error))})
        lost = [i for i in lost if i != index and i < len(workers)]
        named = _peers(workers, index, lost or None)
        raise LowrankEdgeError(
            f"worker {index} ({workers[index]}) lost its peers mid-run: {named} stopped "
            f"responding for {peer_timeout_s:g} s; start the same command again on every worker "
            "(with the same --backup-dir it resumes at the last finished epoch)"
        ) from error


def _peers(workers: list[str], index: int, only: list[int] | None = None) -> str:
    """`worker 1 at 127.0.0.1:2223, ...`: the TF_CONFIG addresses of the other workers."""
    chosen = [i for i in range(len(workers)) if i != index and (only is None or i in only)]
    return ", ".join(f"worker {i} at {workers[i]}" for i in chosen)


def calibration_shards(kind: str, peer_timeout_s: float = PEER_TIMEOUT_S) -> Shards | None:
    """This worker's share of the calibration and the all-reduce that sums it, under
    multi-worker (`compress.shards`); None otherwise (one process calibrates on every image)."""
    if kind != "multi-worker":
        return None
    import tensorflow as tf

    from lowrank_edge.compress.shards import Shards

    strategy = make_strategy(kind, peer_timeout_s)
    workers, index = worker_place()

    def total(array: np.ndarray) -> np.ndarray:
        local = strategy.run(lambda: tf.constant(array, dtype=tf.float64))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, local, axis=None).numpy()

    return Shards(index, len(workers), total)


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
