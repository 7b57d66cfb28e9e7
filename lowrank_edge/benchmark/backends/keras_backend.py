"""Run the Keras worker for one thread count and turn its JSON lines back into Measurements."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict

from lowrank_edge.benchmark.suite import BenchModel
from lowrank_edge.benchmark.timing.calls import TimingPolicy
from lowrank_edge.benchmark.timing.interleave import Measurement

STDERR_TAIL_CHARS = 1500
BatchStep = Callable[[int, int, int, int], None]  # (batch, model index, repeat, round)


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
) -> dict[int, list[Measurement]]:
    """Time `models` (None: skip) at every batch in a worker process sized to `threads`.

    Never raises for a worker failure: every unfinished batch gets a Measurement
    per model carrying the worker's error (or the tail of its stderr).
    """
    job = {
        "threads": threads,
        "batches": list(batches),
        "models": [None if m is None else str(m.folder) for m in models],
        "policy": asdict(policy),
        "seed": seed,
    }
    results: dict[int, list[Measurement]] = {}
    fatal: str | None = None
    with tempfile.TemporaryDirectory(prefix="lowrank-edge-keras-") as tmp:
        job_path, err_path = os.path.join(tmp, "job.json"), os.path.join(tmp, "stderr.txt")
        with open(job_path, "w", encoding="utf-8") as handle:
            json.dump(job, handle)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
        env.setdefault("KERAS_BACKEND", "tensorflow")
        command = [sys.executable, "-m", "lowrank_edge.benchmark.backends.keras_worker", job_path]
        with open(err_path, "w", encoding="utf-8") as err:
            process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=err, text=True, env=env
            )
            try:
                assert process.stdout is not None
                for line in process.stdout:
                    try:
                        event = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # not one of our records
                    if event.get("event") == "step" and on_step is not None:
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
        if fatal is None and code != 0:
            fatal = f"the Keras worker exited with status {code}: {_tail(err_path)}"
    for batch in batches:
        if batch not in results:
            error = fatal or "the Keras worker returned no result for this batch"
            results[batch] = [Measurement(error=None if m is None else error) for m in models]
    return results
