"""The Keras bench worker: a time limit that cannot hang the sweep, one model alive at a time,
the thread settings it was asked for (pinned to one CPU at 1 thread), one trace per open."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from harness.bench import FAST_POLICY, shared_bench_models

from lowrank_edge.benchmark.backends import keras_backend
from lowrank_edge.benchmark.backends.keras_backend import default_timeout_s, run_keras_worker
from lowrank_edge.benchmark.suite import BenchModel, load_models
from lowrank_edge.benchmark.system import available_cpus
from lowrank_edge.errors import LowrankEdgeError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return shared_bench_models(tmp_path_factory)


def _fake_worker(monkeypatch, code: str) -> None:
    """Run `code` (reads the job file from sys.argv[1]) instead of the real worker."""
    command = [sys.executable, "-c", textwrap.dedent(code)]
    monkeypatch.setattr(keras_backend, "worker_command", lambda job_path: [*command, job_path])


def test_timeout_keeps_finished_batches_and_fails_the_rest(monkeypatch, tmp_path):
    """A worker that reports batch 1 and then hangs: batch 1 stands, batch 4 times out."""
    _fake_worker(
        monkeypatch,
        """
        import json, sys, time
        job = json.load(open(sys.argv[1]))
        def emit(**event):
            print(json.dumps(event), flush=True)
        emit(event="step", batch=1, model=0, repeat=0, round=0)
        measurement = {"samples_ns": [[[1000, 2000]]], "error": None}
        emit(event="result", batch=1, measurements=[measurement, None])
        emit(event="step", batch=4, model=0, repeat=0, round=1)
        time.sleep(120)
        """,
    )
    steps = []
    models = [BenchModel("a", tmp_path, None), None]
    results = run_keras_worker(
        models, 1, [1, 4], FAST_POLICY, 0, lambda *step: steps.append(step), timeout_s=3
    )
    assert steps == [(1, 0, 0, 0), (4, 0, 0, 1)]
    assert results[1][0].ok and results[1][0].pooled_ns() == [1000, 2000]
    assert results[4][0].error == (
        "timeout: the Keras worker ran past its 3 s limit and was stopped; "
        "it was at batch 4, model 1, round 2"
    )
    assert results[1][1].error is None and results[4][1].error is None  # not measured: skipped


def test_crashing_worker_reports_its_stderr(monkeypatch, tmp_path):
    _fake_worker(monkeypatch, "import sys; sys.stderr.write('boom: no GPU\\n'); sys.exit(3)")
    results = run_keras_worker([BenchModel("a", tmp_path, None)], 1, [1], FAST_POLICY, 0)
    assert results[1][0].error == "the Keras worker exited with status 3: boom: no GPU"


def test_default_timeout_grows_with_the_timing_budget():
    policy = FAST_POLICY
    longer = dataclasses.replace(policy, max_time_s=policy.max_time_s * 10)
    base = default_timeout_s(policy, models=2, batches=2)
    # every model x batch may use its whole warm-up + timing budget, twice over
    assert base >= 2 * 2 * 2 * policy.max_time_s
    assert default_timeout_s(longer, 2, 2) - base == pytest.approx(
        2 * 2 * 4 * (longer.max_time_s - policy.max_time_s)
    )
    assert default_timeout_s(policy, 3, 2) > base
    with pytest.raises(LowrankEdgeError, match="timeout must be a positive number"):
        run_keras_worker([None], 1, [1], FAST_POLICY, 0, timeout_s=0)


def test_worker_keeps_only_the_model_being_timed_alive(exported, tmp_path):
    """Interleaved rounds open A B A B; at each open every earlier model has been released."""
    folders = [str(exported["base"]), str(exported["e50"])]
    code = f"""
import json, weakref
from lowrank_edge.benchmark.backends.keras_worker import (
    keras_opener, read_source, start_tensorflow,
)
from lowrank_edge.benchmark.timing.calls import TimingPolicy
from lowrank_edge.benchmark.timing.interleave import measure_interleaved

start_tensorflow(1)
policy = TimingPolicy(**{dataclasses.asdict(FAST_POLICY)!r})
opened, alive_at_open = [], []

def tracked(index, opener):
    def open_session():
        alive_at_open.append([i for i, ref in opened if ref() is not None])
        session = opener()
        opened.append((index, weakref.ref(session.model)))
        return session
    return open_session

sources = [read_source(folder) for folder in {folders!r}]
measurements = measure_interleaved(
    [tracked(i, keras_opener(source, 2, 0)) for i, source in enumerate(sources)], policy
)
session = keras_opener(sources[0], 2, 0)()  # traced once at open, never again when run
traced_at_open = session.function.experimental_get_tracing_count()
for _ in range(3):
    session.run()
traces = [traced_at_open, session.function.experimental_get_tracing_count()]
session.close()
print(json.dumps({{
    "traces": traces,
    "order": [i for i, _ in opened],
    "alive_at_open": alive_at_open,
    "alive_after": [i for i, ref in opened if ref() is not None],
    "errors": [m.error for m in measurements],
    "rounds": [len(m.samples_ns[0]) for m in measurements],
}}))
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["errors"] == [None, None]
    assert report["rounds"] == [FAST_POLICY.rounds] * 2
    assert report["order"] == [0, 1] * FAST_POLICY.rounds  # still interleaved
    assert report["alive_at_open"] == [[]] * (2 * FAST_POLICY.rounds)
    assert report["alive_after"] == []
    assert report["traces"] == [1, 1]


@pytest.mark.parametrize("threads", [1, 2])
def test_worker_applies_the_thread_settings_it_was_asked_for(exported, threads):
    """TF reports the intra/inter-op threads asked for; at 1 thread the worker runs on one CPU."""
    cpus = available_cpus()
    setups = []
    results = run_keras_worker(
        [load_models([exported["base"]])[0]], threads, [1], FAST_POLICY, 0, on_setup=setups.append
    )
    assert results[1][0].ok, results[1][0].error
    assert len(setups) == 1
    setup = setups[0]
    assert (setup["intra_op_threads"], setup["inter_op_threads"]) == (threads, 1)
    if threads == 1:
        assert setup["cpus"] == cpus[-1:]  # pinned: TF's two threads share one CPU
    else:
        assert setup["cpus"] == cpus  # more threads: the affinity is left as it is


def test_worker_refuses_a_source_model_changed_since_the_export(exported, tmp_path):
    from lowrank_edge.benchmark.backends.keras_worker import load_verified_model, read_source

    source = read_source(str(exported["e50"]))
    copy = tmp_path / "model.keras"
    copy.write_bytes(source.path.read_bytes() + b"\0")
    with pytest.raises(LowrankEdgeError, match=r"model\.keras: SHA-256 mismatch"):
        load_verified_model(dataclasses.replace(source, path=copy))
