"""Keras/TensorFlow timing in its own process.

Run as `python -m lowrank_edge.benchmark.backends.keras_worker JOB`.

TensorFlow's thread pools can only be sized before TF starts, so each thread
count runs in a fresh process that sets intra-op threads (and inter-op = 1)
right after importing TF, loads each model's `.keras` (SHA-256 checked,
`safe_mode=True`), and times a compiled `tf.function` (no XLA, reduce_retracing)
on a fixed-shape tensor with the same interleaved rounds as the other backends.
It prints JSON lines on stdout (events `step`, `result`, `fatal`); anything
else written to stdout is sent to stderr so it cannot corrupt the records.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from lowrank_edge.benchmark.backends.inputs import make_batch
from lowrank_edge.benchmark.suite import keras_source
from lowrank_edge.benchmark.timing.calls import TimingPolicy
from lowrank_edge.benchmark.timing.interleave import (
    Measurement,
    describe_error,
    measure_interleaved,
)
from lowrank_edge.errors import LowrankEdgeError, MissingDependencyError
from lowrank_edge.fileio import sha256_file
from lowrank_edge.runtime.manifest import load_manifest


def _emit(channel: TextIO, **event: Any) -> None:
    channel.write(json.dumps(event) + "\n")
    channel.flush()


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


def load_keras_model(folder: str):
    """The `.keras` named by the folder's manifest, checksum verified, loaded with safe_mode."""
    import keras

    manifest = load_manifest(folder)
    path = keras_source(manifest)
    expected = manifest.model.source.sha256
    if sha256_file(path) != expected:
        raise LowrankEdgeError(
            f"{path}: SHA-256 does not match the manifest {manifest.path} (expected {expected}); "
            "the source model changed since the export"
        )
    try:
        model = keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # Keras raises many types for a bad file
        raise LowrankEdgeError(
            f"{path}: cannot load the Keras model ({describe_error(error)})"
        ) from error
    return model, manifest.load_samples()[0]


class KerasSession:
    """A compiled call bound to a fixed tensor; `run()` returns numpy so the work is complete."""

    def __init__(self, function, tensor):
        self.function, self.tensor = function, tensor

    def run(self) -> object:
        out = self.function(self.tensor)
        return [t.numpy() for t in out] if isinstance(out, (list, tuple)) else out.numpy()

    def close(self) -> None:
        pass


def run_job(job: dict, channel: TextIO) -> None:
    """Time every model of the job at every batch size and emit one `result` per batch."""
    tf = start_tensorflow(int(job["threads"]))
    policy = TimingPolicy(**job["policy"])
    loaded: list[tuple[Any, Any] | None] = []
    errors: list[str | None] = []
    for folder in job["models"]:
        if folder is None:
            loaded.append(None)
            errors.append(None)
            continue
        try:
            loaded.append(load_keras_model(folder))
            errors.append(None)
        except Exception as error:
            loaded.append(None)
            errors.append(describe_error(error))

    for batch in job["batches"]:
        openers = []
        for entry in loaded:
            if entry is None:
                openers.append(None)
                continue
            model, samples = entry
            tensor = tf.constant(make_batch(samples, batch, job["seed"]))
            function = tf.function(
                lambda t, m=model: m(t, training=False), jit_compile=False, reduce_retracing=True
            )
            openers.append(lambda f=function, t=tensor: KerasSession(f, t))

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
