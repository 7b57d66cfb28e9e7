"""Run one command as N `multi-worker` processes on this machine (127.0.0.1, free ports).

For the tests and the benchmark of `--distribute multi-worker`, and for a user who wants to
see a multi-worker run before spreading it over machines: each process gets the standard
`TF_CONFIG` naming every worker and its own index, exactly as separate machines would.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class WorkerRun:
    """One worker's exit status, output and wall time."""

    index: int
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def free_ports(count: int) -> list[int]:
    """`count` TCP ports on 127.0.0.1 that were free a moment ago (the OS picks them)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tf_config_for(ports: Sequence[int], index: int) -> str:
    """The TF_CONFIG of worker `index` in a cluster of 127.0.0.1 workers on `ports`."""
    workers = [f"127.0.0.1:{port}" for port in ports]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def run_local_workers(
    argv: Sequence[str],
    ports: Sequence[int],
    timeout_s: float,
    env: dict[str, str] | None = None,
    indices: Sequence[int] | None = None,
) -> list[WorkerRun]:
    """Start `argv` once per worker index (all of `ports` by default, or only `indices`) with
    its TF_CONFIG, wait for every one, and return their runs in index order. A worker still
    running after `timeout_s` is killed (returncode -9)."""
    base_env = dict(os.environ if env is None else env)
    indices = range(len(ports)) if indices is None else indices
    with contextlib.ExitStack() as stack:
        # files, not pipes: a worker blocked on a full pipe would stall its peers' collectives
        logs = {i: (_log(stack), _log(stack)) for i in indices}
        start = time.perf_counter()
        procs = {
            i: subprocess.Popen(
                list(argv),
                env={**base_env, "TF_CONFIG": tf_config_for(ports, i)},
                stdout=logs[i][0],
                stderr=logs[i][1],
                text=True,
            )
            for i in indices
        }
        ended = {}
        for i, proc in procs.items():
            try:
                proc.wait(timeout=max(timeout_s - (time.perf_counter() - start), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()  # TensorFlow blocked in a collective ignores SIGTERM
                proc.wait()
            ended[i] = time.perf_counter() - start
        return [WorkerRun(i, procs[i].returncode, *map(_read, logs[i]), ended[i]) for i in indices]


def _log(stack: contextlib.ExitStack):
    return stack.enter_context(tempfile.TemporaryFile("w+"))


def _read(log) -> str:
    log.seek(0)
    return log.read()
