"""The benchmark sweep on tiny exported models: every backend, failures, TF-free path, CLI."""

from __future__ import annotations

import importlib.util
import io
import json
import math
import shutil
import subprocess
import sys
from dataclasses import replace

import pytest
from click.testing import CliRunner
from harness.bench import FAST_CLI_ARGS, FAST_POLICY, TF_BLOCKER, shared_bench_models

from lowrank_edge.benchmark.reporting.progress import Progress
from lowrank_edge.benchmark.results.folder import finish_folder
from lowrank_edge.benchmark.results.records import GroupContext, build_records
from lowrank_edge.benchmark.results.storage import read_jsonl, read_results
from lowrank_edge.benchmark.suite import BenchModel, load_models
from lowrank_edge.benchmark.sweep import SweepConfig, run_sweep
from lowrank_edge.benchmark.system import available_cpus
from lowrank_edge.benchmark.timing.interleave import Measurement
from lowrank_edge.cli import main
from lowrank_edge.errors import LowrankEdgeError

HAS_TF = importlib.util.find_spec("tensorflow") is not None


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return shared_bench_models(tmp_path_factory)


@pytest.fixture(scope="module")
def full_sweep(exported, tmp_path_factory):
    out = tmp_path_factory.mktemp("results") / "device-a"
    backends = ("litert", "onnxruntime") + (("keras",) if HAS_TF else ())
    config = SweepConfig(
        models=(str(exported["base"]), str(exported["e50"])),
        backends=backends,
        threads=(1,),
        batches=(1, 3),
        policy=FAST_POLICY,
        profile=True,
    )
    outcome = run_sweep(config, out, progress=Progress(1, enabled=False))
    finish_folder(out)
    return out, outcome, backends


def test_sweep_times_every_backend_with_finite_efficiency(full_sweep):
    out, outcome, backends = full_sweep
    records = read_results(out)
    assert len(records) == 2 * len(backends) * 2  # models x backends x batches
    assert outcome.failed == 0, [r["error"] for r in records if r["status"] != "ok"]
    assert {r["backend"] for r in records} == set(backends)
    for record in records:
        latency = record["latency"]
        assert latency["runs"] >= FAST_POLICY.min_runs
        assert latency["min_ms"] <= latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
        assert record["system"]["cpu_model"] and record["cpus"]
        if record["backend"] == "keras":  # what TF was set to, as the worker reported it
            assert record["keras_worker"]["intra_op_threads"] == record["threads"]
            assert record["keras_worker"]["inter_op_threads"] == 1
        if record["model"] == "base":
            assert record["is_baseline"] and record["actual_speedup"] == 1.0
            continue
        assert record["theoretical_speedup"] > 1.0  # rank halved: fewer MACs
        assert math.isfinite(record["actual_speedup"]) and record["actual_speedup"] > 0
        assert math.isfinite(record["efficiency"]) and record["efficiency"] > 0
        assert record["speedup_spread"]["rounds"] == FAST_POLICY.rounds


def _with_macs(model: BenchModel, label: str, macs: int) -> BenchModel:
    """A real exported model under another label, its manifest claiming `macs` MACs."""
    facts = replace(model.manifest.model, macs=macs)
    return replace(model, label=label, manifest=replace(model.manifest, model=facts))


def _ms(*values: float) -> list[int]:
    return [int(v * 1_000_000) for v in values]


def test_records_from_known_samples(exported):
    """Speedups, efficiency and flags of hand-made measurements, worked out by hand."""
    (real,) = load_models([exported["base"]])
    models = [
        _with_macs(real, "base", 1000),
        _with_macs(real, "fast", 250),  # theoretical speedup 1000/250 = 4
        _with_macs(real, "slow", 500),  # theoretical speedup 1000/500 = 2
    ]
    measurements = [  # one repeat of two rounds each
        Measurement([[_ms(2, 4, 6), _ms(4, 4, 4)]]),  # round p50s 4 ms and 4 ms
        Measurement([[_ms(1, 2, 3), _ms(1, 1, 5)]]),  # 2 ms and 1 ms: ratios 2 and 4
        Measurement([[_ms(8, 8, 8), _ms(7, 8, 9)]]),  # 8 ms and 8 ms: ratios 0.5 and 0.5
    ]
    context = GroupContext("litert", "float32", threads=1, batch=2, run={"run_id": "r"})
    base, fast, slow = build_records(context, models, ["a", "b", "c"], measurements, baseline=0)

    assert (base["is_baseline"], base["actual_speedup"], base["flags"]) == (True, 1.0, [])
    assert fast["theoretical_speedup"] == 4.0
    assert fast["actual_speedup"] == pytest.approx(3.0)  # median of 2 and 4
    assert fast["efficiency"] == pytest.approx(0.75)  # 3 / 4
    assert fast["flags"] == []
    spread = fast["speedup_spread"]
    assert (spread["q1"], spread["q3"], spread["min"], spread["max"]) == pytest.approx(
        (2.5, 3.5, 2.0, 4.0)  # quartiles of {2, 4} by linear interpolation
    )
    # pooled 1, 2, 3, 1, 1, 5 ms: median 1.5, mean 13/6 ms, batch 2 -> 2000/(13/6) samples/s
    latency = fast["latency"]
    assert (latency["runs"], latency["min_ms"], latency["max_ms"]) == (6, 1.0, 5.0)
    assert latency["p50_ms"] == pytest.approx(1.5)
    assert latency["throughput"] == pytest.approx(2000 / (13 / 6))
    assert slow["actual_speedup"] == pytest.approx(0.5)
    assert slow["efficiency"] == pytest.approx(0.25)  # 0.5 / 2
    assert slow["flags"] == ["slower_than_baseline", "efficiency_below_0.5"]
    assert slow["p50_repeats_ms"] == [8.0]
    assert {r["run_id"] for r in (base, fast, slow)} == {"r"}


def test_sweep_warns_when_the_p50_spread_over_repeats_exceeds_five_percent(
    exported, tmp_path, monkeypatch
):
    """Synthetic repeats: e50's p50s 1 ms and 2 ms (67% spread) are warned about, base's 1 ms
    and 1.02 ms (2%) are not - on the console, in the record and in the report."""
    from lowrank_edge.benchmark import sweep

    def fake_measure(openers, policy, **kwargs):
        return [
            Measurement([[_ms(1, 1, 1)], [_ms(1.02, 1.02, 1.02)]]),
            Measurement([[_ms(1, 1, 1)], [_ms(2, 2, 2)]]),
        ]

    monkeypatch.setattr(sweep, "measure_interleaved", fake_measure)
    config = SweepConfig(
        models=(str(exported["base"]), str(exported["e50"])),
        backends=("litert",),
        batches=(4,),
        policy=replace(FAST_POLICY, repeats=2),
    )
    console = io.StringIO()
    out = tmp_path / "vm-a"
    run_sweep(config, out, progress=Progress(1, stream=console, enabled=False))
    finish_folder(out)
    expected = (
        "p50 spread over repeats 66.7% > 5%: litert e50 float32 threads=1 batch=4 on vm-a; "
        "its latency and speedup are uncertain by about as much"
    )
    assert f"warning: {expected}\n" in console.getvalue()
    assert "litert base" not in console.getvalue()
    by_model = {r["model"]: r for r in read_results(out)}
    assert expected in by_model["e50"]["warnings"]
    assert not any("spread" in w for w in by_model["base"]["warnings"])
    report = (out / "report.md").read_text()
    assert (
        "**Warning:** the p50 spread over repeats exceeds 5% in 1 of 2 configuration(s)" in report
    )
    assert f"- {expected}" in report.split("## Warnings", 1)[1]


def test_sweep_writes_csv_report_plots_and_layer_profile(full_sweep):
    out, _, backends = full_sweep
    lines = (out / "results.csv").read_text().splitlines()
    assert lines[0].startswith("device,host,cpu_model,model,backend")
    assert len(lines) == 1 + 2 * len(backends) * 2
    report = (out / "report.md").read_text()
    for backend in backends:
        assert f"## {backend}" in report
    assert "| e50 | float32 | 1 | 3 |" in report
    for png in ("speedup.png", "latency_threads.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = read_jsonl(out / "profile.jsonl")
    assert {(r["model"], r["baseline"], r["batch"]) for r in rows} == {
        ("e50", "base", 1),
        ("e50", "base", 3),
    }
    factorised = [r for r in rows if r["factorised"]]
    assert factorised and all(r["baseline_us"] > 0 and r["model_us"] > 0 for r in factorised)
    assert "stem_conv" in {r["layer"] for r in factorised}
    assert not any("+" in r["layer"] for r in rows)  # one original layer per row
    p50_us = {
        (r["model"], r["batch"]): 1000 * r["latency"]["p50_ms"]
        for r in read_results(out)
        if r["backend"] == "onnxruntime"
    }
    for batch in (1, 3):  # calibrated rows add up to the p50 the sweep timed
        group = [r for r in rows if r["batch"] == batch]
        for side, label in (("baseline", "base"), ("model", "e50")):
            total = sum(r[f"{side}_calibrated_us"] for r in group)
            assert total == pytest.approx(p50_us[(label, batch)], rel=1e-9)
    assert "calibrated speedup" in report and "Timed p50:" in report


def test_failures_are_recorded_and_the_sweep_goes_on(exported, tmp_path):
    no_tflite = tmp_path / "no-tflite"
    shutil.copytree(exported["e50"], no_tflite)
    next(no_tflite.glob("*.tflite")).unlink()
    bad_manifest = tmp_path / "bad-manifest"
    bad_manifest.mkdir()
    too_many = len(available_cpus()) + 1
    (bad_manifest / "manifest.json").write_text('{"schema": 1, "model": ')
    config = SweepConfig(
        models=(str(exported["base"]), str(no_tflite), str(bad_manifest)),
        backends=("litert", "onnxruntime"),
        threads=(0, 1, too_many),
        batches=(1,),
        policy=FAST_POLICY,
    )
    outcome = run_sweep(config, tmp_path / "out", progress=Progress(1, enabled=False))
    records = read_results(tmp_path / "out")
    assert len(records) == 3 * 2 * 3 and outcome.ok + outcome.failed == len(records)
    by = {(r["model"], r["backend"], r["threads"]): r for r in records}
    for record in records:
        if record["threads"] == 0:
            assert record["status"] == "failed"
            assert record["error"] == "thread count must be >= 1, got 0"
        elif record["model"] == "bad-manifest":
            assert record["status"] == "failed" and "not valid JSON" in record["error"]
    missing = by[("no-tflite", "litert", 1)]
    assert missing["status"] == "failed" and "is missing" in missing["error"]
    assert by[("no-tflite", "onnxruntime", 1)]["status"] == "ok"
    assert by[("base", "litert", 1)]["status"] == "ok"
    assert by[("base", "onnxruntime", 1)]["status"] == "ok"
    oversubscribed = by[("base", "onnxruntime", too_many)]
    assert oversubscribed["status"] == "ok"  # run anyway, with a warning
    assert f"{too_many} threads on {too_many - 1} available CPU(s)" in oversubscribed["warnings"][0]


class _InterruptAt(Progress):
    """Simulates Ctrl-C when the sweep reaches a group."""

    def __init__(self, group: str):
        super().__init__(1, enabled=False)
        self.group = group

    def step(self, group: str, detail: str = "") -> None:
        if group == self.group:
            raise KeyboardInterrupt
        super().step(group, detail)


def test_interrupted_sweep_keeps_finished_records(exported, tmp_path):
    config = SweepConfig(
        models=(str(exported["base"]), str(exported["e50"])),
        backends=("litert",),
        batches=(1, 2),
        policy=FAST_POLICY,
    )
    with pytest.raises(KeyboardInterrupt):
        run_sweep(config, tmp_path, progress=_InterruptAt("litert threads=1 batch=2"))
    records = read_results(tmp_path)
    assert [(r["model"], r["batch"], r["status"]) for r in records] == [
        ("base", 1, "ok"),
        ("e50", 1, "ok"),
    ]


class _SwapAt(Progress):
    """Replaces a model file's bytes with another valid model's when a step is reached."""

    def __init__(self, detail: str, target, replacement):
        super().__init__(1, enabled=False)
        self.detail, self.target, self.replacement = detail, target, replacement

    def step(self, group: str, detail: str = "") -> None:
        if detail == self.detail:
            self.target.write_bytes(self.replacement.read_bytes())
        super().step(group, detail)


def test_artifact_swapped_between_rounds_fails_its_configuration(exported, tmp_path):
    """Every open checks the bytes it loads: a file swapped after round 1 is refused in round 2."""
    e50 = shutil.copytree(exported["e50"], tmp_path / "e50")
    target = next(e50.glob("*.tflite"))
    swap = _SwapAt("| e50 float32 round 2/2", target, next(exported["base"].glob("*.tflite")))
    config = SweepConfig(
        models=(str(exported["base"]), str(e50)),
        backends=("litert",),
        policy=FAST_POLICY,
    )
    outcome = run_sweep(config, tmp_path / "out", progress=swap)
    by_model = {r["model"]: r for r in read_results(tmp_path / "out")}
    assert by_model["base"]["status"] == "ok"
    swapped = by_model["e50"]
    assert swapped["status"] == "failed" and outcome.failed == 1
    assert "SHA-256 mismatch" in swapped["error"] and str(target) in swapped["error"]


@pytest.mark.skipif(not HAS_TF, reason="the keras backend needs TensorFlow")
def test_hung_keras_worker_times_out_and_the_sweep_goes_on(exported, tmp_path, monkeypatch):
    from lowrank_edge.benchmark.backends import keras_backend

    hang = [sys.executable, "-c", "import time; time.sleep(120)"]
    monkeypatch.setattr(keras_backend, "worker_command", lambda job_path: [*hang, job_path])
    config = SweepConfig(
        models=(str(exported["base"]), str(exported["e50"])),
        backends=("keras", "litert"),
        batches=(1, 2),
        policy=FAST_POLICY,
        keras_timeout_s=0.5,
    )
    outcome = run_sweep(config, tmp_path, progress=Progress(1, enabled=False))
    records = read_results(tmp_path)
    keras = [r for r in records if r["backend"] == "keras"]
    assert len(keras) == 2 * 2 and outcome.failed == 4 and outcome.ok == 4
    for record in keras:
        assert record["status"] == "failed"
        assert record["error"] == (
            "timeout: the Keras worker ran past its 0.5 s limit and was stopped"
        )
    assert all(r["status"] == "ok" for r in records if r["backend"] == "litert")


def test_bad_keras_timeout_is_refused():
    for bad in (0, -1.0, True):
        with pytest.raises(LowrankEdgeError, match="timeout must be a positive number"):
            SweepConfig(models=("m",), keras_timeout_s=bad)


def test_bench_runs_without_tensorflow(exported, tmp_path):
    """The TF-free path: tensorflow/keras imports are blocked; keras is a recorded failure."""
    out = tmp_path / "tf-free"
    cpu = available_cpus()[-1]  # pinned in the subprocess only
    code = TF_BLOCKER + (
        "import importlib, pkgutil, lowrank_edge.benchmark as bench\n"
        "for info in pkgutil.iter_modules(bench.__path__):\n"
        "    importlib.import_module(f'lowrank_edge.benchmark.{info.name}')\n"
        "from lowrank_edge.cli import main\n"
        "main(sys.argv[1:], standalone_mode=False)\n"
        "blocked = ('tensorflow', 'keras', 'onnx')  # onnx: not in the bench extra either\n"
        "leaked = [m for m in sys.modules if m.split('.')[0] in blocked]\n"
        "assert not leaked, leaked\n"
    )
    args = ["bench", str(exported["base"]), str(exported["e50"]), "--backends",
            "litert,onnxruntime,keras", "--profile", "--cpus", str(cpu), "--out", str(out),
            *FAST_CLI_ARGS]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    records = read_results(out)
    status = {(r["model"], r["backend"]): r for r in records}
    assert all(r["cpus"] == [cpu] and r["pinned"] for r in records)
    for model in ("base", "e50"):
        assert status[(model, "litert")]["status"] == "ok"
        assert status[(model, "onnxruntime")]["status"] == "ok"
        keras = status[(model, "keras")]
        assert keras["status"] == "failed"
        assert "the keras backend needs tensorflow and keras" in keras["error"]
        assert "lowrank-edge[train]" in keras["error"]
    assert any(r["factorised"] for r in read_jsonl(out / "profile.jsonl"))  # profiled TF-free
    report = (out / "report.md").read_text()
    assert "## keras\n\nNo configuration ran (see Failures)." in report
    assert "## Failures" in report


def test_cli_bench_baseline_refusal_and_merged_report(exported, tmp_path):
    runner = CliRunner()
    models = [str(exported["base"]), str(exported["e50"])]
    for device, repeats in (("device-a", "1"), ("device-b", "2")):
        options = ["--backends", "litert", "--baseline", str(exported["e50"]), "--repeats", repeats]
        result = runner.invoke(  # the later --repeats wins over FAST_CLI_ARGS' one
            main, ["bench", *models, *FAST_CLI_ARGS, *options, "--out", str(tmp_path / device)]
        )
        assert result.exit_code == 0, result.output
        assert "2 configuration(s) timed, 0 failed" in result.output
    records = read_results(tmp_path / "device-a")
    assert {r["model"]: r["is_baseline"] for r in records} == {"base": False, "e50": True}
    command = json.loads((tmp_path / "device-a" / "command.json").read_text())
    assert {"argv", "commit", "dirty", "date", "machine"} <= set(command)
    assert all(r["git"]["commit"] == command["commit"] for r in records)
    assert all(r["baseline"] == "e50" for r in records)
    assert all(len(r["p50_repeats_ms"]) == 2 for r in read_results(tmp_path / "device-b"))

    again = runner.invoke(main, ["bench", *models, "--out", str(tmp_path / "device-a")])
    assert again.exit_code == 1
    assert "results.jsonl already exists; pass --overwrite" in again.output

    merged = tmp_path / "merged"
    result = runner.invoke(
        main,
        [
            "bench-report",
            str(tmp_path / "device-a"),
            str(tmp_path / "device-b"),
            "--out",
            str(merged),
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    report = (merged / "report.md").read_text()
    assert "## Across devices" in report
    assert "### device-a" in report and "### device-b" in report
    assert "p50 spread over repeats" in report  # device-b repeated its rounds
    assert len((merged / "results.csv").read_text().splitlines()) == 1 + 4


def test_cli_rejects_bad_options_with_clear_messages(exported, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["bench", str(exported["base"]), "--threads", "1,x"])
    assert result.exit_code == 2 and "expected comma-separated integers" in result.output
    result = runner.invoke(main, ["bench", str(exported["base"]), "--backends", "tensorrt",
                                  "--out", str(tmp_path / "o")])  # fmt: skip
    assert result.exit_code == 2
    assert "unknown tensorrt; choose from litert, onnxruntime, keras" in result.output
    result = runner.invoke(main, ["bench", str(exported["base"]), "--batch", "0",
                                  "--out", str(tmp_path / "o")])  # fmt: skip
    assert result.exit_code == 1 and "batch sizes must be >= 1, got [0]" in result.output


def test_bench_report_needs_result_files(tmp_path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["bench-report", str(tmp_path / "empty")])
    assert result.exit_code == 1
    assert "no benchmark results here" in result.output
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "results.jsonl").write_text(json.dumps({"model": "a"}) + "\n{oops\n")
    result = CliRunner().invoke(main, ["bench-report", str(bad), "--out", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert "results.jsonl: line 2: not valid JSON" in result.output


class _Order(Progress):
    """Records every timed step's detail, in the order the sweep visits them."""

    def __init__(self):
        super().__init__(1, enabled=False)
        self.details: list[str] = []

    def step(self, group: str, detail: str = "") -> None:
        self.details.append(f"{group} {detail}")
        super().step(group, detail)


def test_every_variant_is_timed_in_the_original_float32_rounds(exported, tmp_path):
    """float32 and float16 of both models share each round, so a float16 file's speedup over the
    original float32 is a paired ratio over the same rounds, named in its record."""
    from harness.data import make_pattern_dataset

    from lowrank_edge.export import export_model

    folders = {}
    for name in ("base", "e50"):
        folders[name] = tmp_path / name
        export_model(
            exported[name].parent / f"{name}.keras", folders[name], formats=("tflite",),
            tflite_variants=("float32", "float16"), parity_samples=8, log=lambda m: None,
            dataset=make_pattern_dataset(n_train=16, n_val=8, n_test=16),
        )  # fmt: skip
    config = SweepConfig(
        models=(str(folders["base"]), str(folders["e50"])),
        backends=("litert",),
        variants=("float32", "float16"),
        policy=FAST_POLICY,
    )
    order = _Order()
    run_sweep(config, tmp_path / "out", progress=order)
    first_round = [d for d in order.details if "round 1/" in d]
    assert first_round == [
        f"litert threads=1 batch=1 | {model} {variant} round 1/{FAST_POLICY.rounds}"
        for variant in ("float32", "float16")
        for model in ("base", "e50")
    ]
    assert order.details.index(first_round[-1]) < min(
        order.details.index(d) for d in order.details if "round 2/" in d
    )  # every variant's round 1 before any round 2
    records = {(r["model"], r["variant"]): r for r in read_results(tmp_path / "out")}
    assert len(records) == 4
    for record in records.values():
        assert record["status"] == "ok", record["error"]
        assert record["reference"] == "base float32"
        assert record["reference_spread"]["rounds"] == FAST_POLICY.rounds * FAST_POLICY.repeats
        assert math.isfinite(record["reference_speedup"]) and record["reference_speedup"] > 0
    assert records[("base", "float32")]["reference_speedup"] == 1.0
    # the same-variant speedup stays against the baseline in that variant
    assert records[("base", "float16")]["actual_speedup"] == 1.0
