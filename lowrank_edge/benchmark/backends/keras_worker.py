"""Keras/TensorFlow timing in its own process.

Run as `python -m lowrank_edge.benchmark.backends.keras_worker JOB`.

TensorFlow's thread pools can only be sized before TF starts, so each thread
count runs in a fresh process that sets intra-op threads (and inter-op = 1)
right after importing TF, before any op, and reports the settings TF then
holds (event `setup`).

At 1 thread the process is also pinned to one CPU before TF starts a thread.
Even at 1 thread TF runs a graph function on two OS threads: the caller hands
every call to the inter-op pool's thread (`tf_Compute`), which runs the
kernels inline and wakes the caller when done - about one sleep of the caller
and one preemption of `tf_Compute` per inference (counted in
/proc/<pid>/task/*/sched), where LiteRT and ONNX Runtime at 1 thread stay on
the caller's thread. Unpinned, the scheduler is free to wake the two threads
on different CPUs, so each call can pay cross-CPU wake-ups whose cost depends
on what else the machine runs (on a VM, an idle vCPU is woken through the
host) - the exposure the other runtimes have at 2 threads, where their repeat
spreads in bench/results/mnist-ci-vm reach 42% (LiteRT) and 21% (ORT).
Pinned, the hand-off is a switch on one CPU and the configuration uses one
core, as the others do at 1 thread. That is the mechanism, not a measured
gain: on the loaded 2-CPU machine where this was written, pinned and unpinned
timings did not differ beyond the load's noise. With more threads TF may run
the pool's threads and the caller at once, so the process keeps its affinity.

Like the other backends, only the model being timed is alive: every open
(each model, each round) reads the `.keras` once, checks those bytes'
SHA-256, loads them (`safe_mode=True`), traces a `tf.function` (no XLA) into
one concrete function for the fixed input and calls it once (TF optimises and
instantiates the graph on its first call), all untimed; the warm-up and the
timed calls then call that concrete function, without tf.function's per-call
argument matching. The model is released (`keras.backend.clear_session()` and
garbage collection) before the next one opens. Rounds therefore reload the
model each time, as LiteRT/ORT reopen theirs. It prints JSON lines on stdout
(events `setup`, `step`, `result`, `fatal`); anything else written to stdout
is sent to stderr so it cannot corrupt the records.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from lowrank_edge.benchmark.backends.inputs import make_batch
from lowrank_edge.benchmark.suite import keras_source
from lowrank_edge.benchmark.timing.calls import TimingPolicy
from lowrank_edge.benchmark.timing.interleave import (
    Measurement,
    Opener,
    describe_error,
    measure_interleaved,
)
from lowrank_edge.errors import LowrankEdgeError, MissingDependencyError
from lowrank_edge.runtime.manifest import load_manifest


def _emit(channel: TextIO, **event: Any) -> None:
    channel.write(json.dumps(event) + "\n")
    channel.flush()


def pin_for_threads(threads: int) -> list[int]:
    """At 1 thread, pin this process to one CPU of its affinity (the last); the CPUs it may use.

    Call before TensorFlow starts its threads: they inherit the affinity. With more threads,
    or where the OS cannot pin, the affinity is left as it is.
    """
    if not hasattr(os, "sched_getaffinity"):
        return []
    cpus = sorted(os.sched_getaffinity(0))
    if threads == 1 and len(cpus) > 1:
        try:
            os.sched_setaffinity(0, {cpus[-1]})
        except OSError:
            pass  # a sandbox may forbid it: timed unpinned, and the setup event says so
    return sorted(os.sched_getaffinity(0))


def start_tensorflow(threads: int):
    """Import TensorFlow and size its thread pools before it does anything else."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    try:
        import tensorflow as tf
    except ImportError as error:
        raise MissingDependencyError(
            "the keras backend needs TensorFlow and Keras, which are not installed; "
            "use the full install: pip install 'lowrank-edge[train]'"
        ) from error
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    return tf


@dataclass(frozen=True)
class KerasSource:
    """One model of the job, not loaded: its `.keras` file, expected SHA-256 and samples."""

    path: Path
    sha256: str
    samples: np.ndarray


def read_source(folder: str) -> KerasSource:
    """The `.keras` named by the folder's manifest and the manifest's samples (checked)."""
    manifest = load_manifest(folder)
    return KerasSource(
        keras_source(manifest), manifest.model.source.sha256, manifest.load_samples()[0]
    )


def load_verified_model(source: KerasSource):
    """Load the model from bytes read once and checked against the manifest's SHA-256.

    Keras loads only from a path, so the checked bytes go to a private temporary file: a
    source changed after the check is never what gets loaded.
    """
    import keras

    try:
        content = source.path.read_bytes()
    except OSError as error:
        raise LowrankEdgeError(f"{source.path}: cannot read the Keras model ({error})") from error
    actual = hashlib.sha256(content).hexdigest()
    if actual != source.sha256:
        raise LowrankEdgeError(
            f"{source.path}: SHA-256 mismatch: the manifest says {source.sha256}, the file has "
            f"{actual}; the source model changed since the export"
        )
    with tempfile.TemporaryDirectory(prefix="lowrank-edge-keras-") as tmp:
        private = Path(tmp) / "model.keras"
        private.write_bytes(content)
        try:
            return keras.models.load_model(private, safe_mode=True, compile=False)
        except Exception as error:  # Keras raises many types for a bad file
            raise LowrankEdgeError(
                f"{source.path}: cannot load the Keras model ({describe_error(error)})"
            ) from error


def thread_settings(tf) -> dict:
    """What TF's thread pools are set to, and the CPUs this process may run on."""
    return {
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "cpus": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [],
    }


class KerasSession:
    """One loaded model and a compiled call on a fixed tensor; `close()` releases them all.

    Opening traces the model into one concrete function for the tensor's shape and calls it
    once, so neither tracing nor the graph's first-call optimisation falls in the warm-up.
    """

    def __init__(self, model: Any, x: np.ndarray):
        import tensorflow as tf

        self.model = model
        self.tensor = tf.constant(x)
        self.function = tf.function(lambda t: model(t, training=False), jit_compile=False)
        try:
            self.concrete = self.function.get_concrete_function(
                tf.TensorSpec(self.tensor.shape, self.tensor.dtype)
            )
            self.run()
        except BaseException:
            self.close()  # a model that fails its first call is released all the same
            raise

    def run(self) -> object:
        """One inference; returns numpy so the work is complete when it returns."""
        out = self.concrete(self.tensor)
        return [t.numpy() for t in out] if isinstance(out, (list, tuple)) else out.numpy()

    def close(self) -> None:
        """Drop the model, its traced function and tensor; clear Keras' state; collect."""
        import keras

        self.model = self.function = self.concrete = self.tensor = None
        keras.backend.clear_session(free_memory=True)  # also runs gc.collect()
        gc.collect()


def keras_opener(source: KerasSource, batch: int, seed: int) -> Opener:
    """An opener that loads `source` afresh (bytes checked) on every call."""
    x = make_batch(source.samples, batch, seed)
    return lambda: KerasSession(load_verified_model(source), x)


def run_job(job: dict, channel: TextIO) -> None:
    """Time every model of the job at every batch size and emit one `result` per batch."""
    threads = int(job["threads"])
    pin_for_threads(threads)
    tf = start_tensorflow(threads)
    _emit(channel, event="setup", **thread_settings(tf))
    policy = TimingPolicy(**job["policy"])
    sources: list[KerasSource | None] = []
    errors: list[str | None] = []
    for folder in job["models"]:
        source = error = None
        if folder is not None:
            try:
                source = read_source(folder)
            except Exception as problem:
                error = describe_error(problem)
        sources.append(source)
        errors.append(error)

    for batch in job["batches"]:
        openers = [
            None if source is None else keras_opener(source, batch, job["seed"])
            for source in sources
        ]

        def step(index: int, repeat: int, rnd: int, batch: int = batch) -> None:
            _emit(channel, event="step", batch=batch, model=index, repeat=repeat, round=rnd)

        measurements = measure_interleaved(openers, policy, on_step=step)
        for index, error in enumerate(errors):
            if error is not None:
                measurements[index] = Measurement(error=error)
        _emit(
            channel,
            event="result",
            batch=batch,
            measurements=[
                None if job["models"][i] is None else m.to_dict()
                for i, m in enumerate(measurements)
            ],
        )


def main(argv: list[str] | None = None) -> int:
    """Entry point: read the job file, run it, report a fatal error as an event."""
    argv = sys.argv[1:] if argv is None else argv
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints and C++ logs go to stderr
    if len(argv) != 1:
        _emit(
            channel,
            event="fatal",
            error="usage: python -m lowrank_edge.benchmark.backends.keras_worker JOB.json",
        )
        return 2
    try:
        job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
        run_job(job, channel)
    except Exception as error:
        _emit(channel, event="fatal", error=describe_error(error))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
