"""System facts, CPU pinning, model labels and result-file handling of the benchmark."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lowrank_edge.benchmark.results.storage import JsonlWriter, flat_row, read_jsonl, write_csv
from lowrank_edge.benchmark.suite import baseline_index, load_models, model_labels
from lowrank_edge.benchmark.system import available_cpus, cpu_model, pin_cpus, system_facts
from lowrank_edge.errors import LowrankEdgeError


def test_cpu_model_reads_x86_and_arm_cpuinfo(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n")
    assert cpu_model(x86) == "AMD EPYC 7B13"
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 108.00\n\nModel\t\t: Raspberry Pi 5 Model B\n")
    assert cpu_model(arm) == "Raspberry Pi 5 Model B"


def test_system_facts_name_the_machine_and_runtimes():
    facts = system_facts()
    assert facts["affinity"] == available_cpus() and facts["cpu_count"] >= 1
    assert set(facts["packages"]) >= {"onnxruntime", "ai-edge-litert", "numpy"}
    assert facts["packages"]["numpy"] is not None


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux only")
def test_pin_cpus_pins_and_rejects_unknown_ids():
    before = available_cpus()
    try:
        assert pin_cpus([before[0]]) == [before[0]]
    finally:
        os.sched_setaffinity(0, before)
    with pytest.raises(LowrankEdgeError, match=r"--cpus: CPU ids must be in 0\.\.\d+"):
        pin_cpus([100000])


def test_model_labels_are_short_and_unique():
    assert model_labels([Path("m/mnist/base"), Path("m/mnist/e75")]) == ["base", "e75"]
    assert model_labels([Path("a/mnist/e75"), Path("b/emnist/e75")]) == ["mnist/e75", "emnist/e75"]


def test_missing_manifest_becomes_a_model_error_and_baseline_must_be_listed(tmp_path):
    models = load_models([tmp_path / "nowhere"])
    assert models[0].manifest is None
    assert "manifest not found" in models[0].error
    with pytest.raises(LowrankEdgeError, match="--baseline other is not one of"):
        baseline_index(models, "other")


def test_jsonl_round_trip_and_csv_flattening(tmp_path):
    record = {
        "model": "e50", "backend": "litert", "variant": "float32", "threads": 1, "batch": 2,
        "status": "ok", "latency": {"p50_ms": 1.5, "runs": 9}, "flags": ["slower_than_baseline"],
        "speedup_spread": {"q1": 0.8, "q3": 0.9}, "system": {"cpu_model": "X"},
    }  # fmt: skip
    with JsonlWriter(tmp_path / "r.jsonl") as writer:
        writer.write(record)
        assert read_jsonl(tmp_path / "r.jsonl") == [record]  # flushed before close
    row = flat_row(record)
    assert (row["p50_ms"], row["runs"], row["speedup_q1"], row["cpu_model"]) == (1.5, 9, 0.8, "X")
    assert row["flags"] == "slower_than_baseline"
    text = write_csv([record], tmp_path / "r.csv").read_text().splitlines()
    assert len(text) == 2 and ",1.5," in text[1]
    with JsonlWriter(tmp_path / "nan.jsonl") as writer:
        with pytest.raises(ValueError):  # NaN is not valid JSON: refused, never written
            writer.write({"x": float("nan")})
    assert read_jsonl(tmp_path / "nan.jsonl") == []
