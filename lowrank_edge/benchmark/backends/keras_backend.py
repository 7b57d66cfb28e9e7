"""Run the Keras worker for one thread count and turn its JSON lines back into Measurements.

The worker runs under a time limit (`default_timeout_s`, derived from the timing policy, or
the sweep's `keras_timeout_s`): a worker past it is killed and every batch it had not finished
is recorded as failed with the reason, so a hung TensorFlow never hangs the sweep.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict

from lowrank_edge.benchmark.suite import BenchModel
from lowrank_edge.benchmark.timing.calls import TimingPolicy
from lowrank_edge.benchmark.timing.interleave import Measurement
from lowrank_edge.errors import LowrankEdgeError

STDERR_TAIL_CHARS = 1500
WORKER_MODULE = "lowrank_edge.benchmark.backends.keras_worker"
STARTUP_ALLOWANCE_S = 120.0  # start Python, import TensorFlow and Keras
OPEN_ALLOWANCE_S = 30.0  # load one .keras and trace its call, once per model per round
BatchStep = Callable[[int, int, int, int], None]  # (batch, model index, repeat, round)
Setup = Callable[[dict], None]  # the worker's thread settings: intra/inter-op threads, CPUs


def default_timeout_s(policy: TimingPolicy, models: int, batches: int) -> float:
    """A generous limit for one worker: startup, every open, twice every timing budget.

    Per model, batch and repeat, warm-up and timing each stop at `max_time_s` (spread over the
    rounds), so 2 x max_time_s bounds them; doubled again for slow calls that overshoot.
    """
    timed = max(models, 1) * max(batches, 1) * policy.repeats
    return (
        STARTUP_ALLOWANCE_S
        + timed * policy.rounds * OPEN_ALLOWANCE_S
        + timed * 2 * (2 * policy.max_time_s)
    )


def worker_command(job_path: str) -> list[str]:
    """The command line that runs the worker on a job file."""
    return [sys.executable, "-m", WORKER_MODULE, job_path]


def check_timeout(timeout_s: float | None) -> None:
    """Raise a clear error unless `timeout_s` is None (the default) or a positive number."""
    if timeout_s is None:
        return
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or timeout_s <= 0:
        raise LowrankEdgeError(
            f"the Keras worker timeout must be a positive number of seconds, got {timeout_s!r}"
        )


def _tail(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        text = handle.read()
    return " ".join(text[-STDERR_TAIL_CHARS:].split())


def run_keras_worker(
    models: Sequence[BenchModel | None],
    threads: int,
    batches: Sequence[int],
    policy: TimingPolicy,
    seed: int,
    on_step: BatchStep | None = None,
    timeout_s: float | None = None,
    on_setup: Setup | None = None,
) -> dict[int, list[Measurement]]:
    """Time `models` (None: skip) at every batch in a worker process sized to `threads`.

    `timeout_s` (default: `default_timeout_s`) bounds the whole worker. `on_setup` receives
    the thread settings TF reports once the worker has set them (`intra_op_threads`,
    `inter_op_threads`) and the CPUs the worker may run on (`cpus`). Never raises for a
    worker failure: every unfinished batch gets a Measurement per model carrying the worker's
    error, the timeout, or the tail of its stderr.
    """
    check_timeout(timeout_s)
    if timeout_s is None:
        timeout_s = default_timeout_s(policy, sum(m is not None for m in models), len(batches))
    job = {
        "threads": threads,
        "batches": list(batches),
        "models": [None if m is None else str(m.folder) for m in models],
        "policy": asdict(policy),
        "seed": seed,
    }
    results: dict[int, list[Measurement]] = {}
    fatal: str | None = None
    last_step = ""
    with tempfile.TemporaryDirectory(prefix="lowrank-edge-keras-") as tmp:
        job_path, err_path = os.path.join(tmp, "job.json"), os.path.join(tmp, "stderr.txt")
        with open(job_path, "w", encoding="utf-8") as handle:
            json.dump(job, handle)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
        env.setdefault("KERAS_BACKEND", "tensorflow")
        with open(err_path, "w", encoding="utf-8") as err:
            process = subprocess.Popen(
                worker_command(job_path), stdout=subprocess.PIPE, stderr=err, text=True, env=env
            )
            timed_out = threading.Event()

            def stop() -> None:
                timed_out.set()
                process.kill()  # closes its stdout, which ends the read loop below

            timer = threading.Timer(timeout_s, stop)
            timer.daemon = True
            timer.start()
            try:
                assert process.stdout is not None
                for line in process.stdout:
                    try:
                        event = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # not one of our records
                    if event.get("event") == "setup":
                        if on_setup is not None:
                            on_setup({k: v for k, v in event.items() if k != "event"})
                    elif event.get("event") == "step":
                        last_step = (
                            f"; it was at batch {event['batch']}, model {event['model'] + 1}, "
                            f"round {event['round'] + 1}"
                        )
                        if on_step is not None:
                            on_step(event["batch"], event["model"], event["repeat"], event["round"])
                    elif event.get("event") == "result":
                        results[event["batch"]] = [
                            Measurement() if m is None else Measurement.from_dict(m)
                            for m in event["measurements"]
                        ]
                    elif event.get("event") == "fatal":
                        fatal = event.get("error")
                code = process.wait()
            except BaseException:
                process.kill()
                process.wait()
                raise
            finally:
                timer.cancel()
        if timed_out.is_set():
            fatal = (
                f"timeout: the Keras worker ran past its {timeout_s:g} s limit and was stopped"
                f"{last_step}"
            )
        elif fatal is None and code != 0:
            fatal = f"the Keras worker exited with status {code}: {_tail(err_path)}"
    for batch in batches:
        if batch not in results:
            error = fatal or "the Keras worker returned no result for this batch"
            results[batch] = [Measurement(error=None if m is None else error) for m in models]
    return results
