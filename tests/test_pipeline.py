"""The pipeline end to end on a tiny model and tiny data: files, records and invariants."""

import json

import pytest
from harness.data import make_pattern_dataset

from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.model.resnet import ResNetConfig
from lowrank_edge.model.train import FitConfig
from lowrank_edge.pipeline.run import CompressOptions, PipelineConfig, parse_energies, run_pipeline

TINY = ResNetConfig(num_classes=3, widths=(4, 8), blocks_per_stage=1, head_units=8)


def tiny_dataset():
    """Three easy classes in memory (the shared harness' pattern images)."""
    return make_pattern_dataset(num_classes=3, n_train=64, n_val=16, n_test=32)


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline")
    config = PipelineConfig(
        dataset="tiny",
        out_dir=out,
        energies=(0.5, 0.9),
        model=TINY,
        train=FitConfig(epochs=2, batch_size=16, verbose=0),
        finetune=FitConfig(epochs=1, batch_size=16, learning_rate=5e-4, patience=1, verbose=0),
    )
    logs: list[str] = []
    records = run_pipeline(config, data=tiny_dataset(), log=logs.append)
    return out, records, logs


def test_pipeline_writes_models_results_report_and_plots(pipeline_run):
    out, records, logs = pipeline_run
    assert [r["name"] for r in records] == ["base", "e50", "e90"]
    for name in (
        "base.keras",
        "e50.keras",
        "e90.keras",
        "e50.compression.json",
        "results.json",
        "report.md",
        "accuracy_vs_reduction.png",
        "ranks_per_layer.png",
    ):
        assert (out / name).is_file(), name
    summary = json.loads((out / "results.json").read_text())
    assert [m["name"] for m in summary["models"]] == ["base", "e50", "e90"]
    report = (out / "report.md").read_text()
    assert "Parameter reduction" in report and "Theoretical speedup" in report
    assert any(line.startswith("[e50]") for line in logs)


def test_pipeline_records_are_consistent(pipeline_run):
    _, records, _ = pipeline_run
    base, e50, e90 = records
    for record in (e50, e90):
        assert record["theoretical_speedup"] == pytest.approx(base["macs"] / record["macs"])
        assert record["param_reduction"] == pytest.approx(1 - record["params"] / base["params"])
        assert 0.0 <= record["accuracy"]["test"] <= 1.0
        assert "before_finetune_test" in record["accuracy"]
    # A lower energy keeps fewer (or equal) parameters.
    assert e50["params"] <= e90["params"] <= base["params"]


def test_pipeline_refuses_to_replace_results_without_overwrite(pipeline_run):
    out, _, _ = pipeline_run
    config = PipelineConfig(dataset="tiny", out_dir=out, model=TINY)
    with pytest.raises(LowrankEdgeError, match="already exists; pass --overwrite"):
        run_pipeline(config, data=tiny_dataset(), log=lambda _: None)


def test_parse_energies_validates():
    assert parse_energies("0.5,0.75,0.9") == (0.5, 0.75, 0.9)
    with pytest.raises(LowrankEdgeError, match="outside"):
        parse_energies("0.5,1.5")
    with pytest.raises(LowrankEdgeError, match="expected numbers"):
        parse_energies("half")


def test_compress_options_need_exactly_one_rule():
    with pytest.raises(LowrankEdgeError, match="exactly one"):
        CompressOptions(energy=0.5, rank=3).policy()
    assert CompressOptions(energy=0.75).label() == "e75"
    assert CompressOptions(rank=16).label() == "r16"
