"""The pipeline end to end on a tiny model and tiny data: files, records and invariants."""

import json
from pathlib import Path

import pytest
from harness.data import make_pattern_dataset

from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.model.resnet import ResNetConfig
from lowrank_edge.model.train import FitConfig
from lowrank_edge.pipeline.measure import relative_figures
from lowrank_edge.pipeline.run import CompressOptions, PipelineConfig, parse_energies, run_pipeline

TINY = ResNetConfig(num_classes=3, widths=(4, 8), blocks_per_stage=1, head_units=8)

# TINY's cost on a 28x28x1 input, counted by hand. Conv MACs: out_h*out_w*filters*kh*kw*cin;
# Dense MACs: in*out. Params: kernel + bias + 4 per BatchNorm channel (gamma, beta, mean, var).
#   stem_conv       3x3x1->4, 28x28 out:            28*28*4*9  =  28,224 MACs;  36 + bn 16
#   s1b1_a_conv     3x3x4->4, 28x28 out:            28*28*4*36 = 112,896 MACs; 144 + bn 16
#   s1b1_b_conv     3x3x4->4, 28x28 out:            28*28*4*36 = 112,896 MACs; 144 + bn 16
#   s2b1_a_conv     3x3x4->8, stride 2, 14x14 out:  14*14*8*36 =  56,448 MACs; 288 + bn 32
#   s2b1_b_conv     3x3x8->8, 14x14 out:            14*14*8*72 = 112,896 MACs; 576 + bn 32
#   s2b1_proj_conv  1x1x4->8, stride 2, 14x14 out:  14*14*8*4  =   6,272 MACs;  32 + bn 32
#   fc              Dense 8->8 (+bias):                    8*8 =      64 MACs;  72
#   logits          Dense 8->3 (+bias):                    8*3 =      24 MACs;  27
TINY_MACS = 28_224 + 2 * 112_896 + 56_448 + 112_896 + 6_272 + 64 + 24  # 429,720
TINY_PARAMS = 36 + 16 + 2 * (144 + 16) + 288 + 32 + 576 + 32 + 32 + 32 + 72 + 27  # 1,463
# Output positions (out_h * out_w) of each kernel layer.
POSITIONS = {
    "stem_conv": 28 * 28,
    "s1b1_a_conv": 28 * 28,
    "s1b1_b_conv": 28 * 28,
    "s2b1_a_conv": 14 * 14,
    "s2b1_b_conv": 14 * 14,
    "s2b1_proj_conv": 14 * 14,
    "fc": 1,
    "logits": 1,
}


def hand_cost(layers: list[dict]) -> tuple[int, int]:
    """(params, MACs) of TINY after the factorisations listed in a compression report.

    A kernel read as an m x n matrix (m = kh*kw*cin, n = cout) costs m*n weights and
    positions*m*n MACs; its rank-r factor pair costs r*(m + n) weights and positions*r*(m + n)
    MACs (a kh x kw conv to r channels, then a 1x1 conv to n). Biases stay as they were.
    """
    params, macs = TINY_PARAMS, TINY_MACS
    for layer in layers:
        if layer["status"] != "factorised":
            continue
        (m, n), r = layer["matrix_shape"], layer["rank_kept"]
        params -= m * n - r * (m + n)
        macs -= POSITIONS[layer["name"]] * (m * n - r * (m + n))
    return params, macs


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
        target_macs=(),
        model=TINY,
        train=FitConfig(epochs=2, batch_size=16, verbose=0),
        finetune=FitConfig(epochs=1, batch_size=16, learning_rate=5e-4, patience=1, verbose=0),
        seed=3,
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


def test_pipeline_records_match_a_hand_count(pipeline_run):
    _, records, _ = pipeline_run
    base, e50, e90 = records
    assert (base["params"], base["macs"], base["flops"]) == (1_463, 429_720, 2 * 429_720)
    for record in (e50, e90):
        params, macs = hand_cost(record["compression"]["layers"])
        assert (record["params"], record["macs"]) == (params, macs)
        assert record["theoretical_speedup"] == pytest.approx(429_720 / macs)
        assert record["param_reduction"] == pytest.approx(1 - params / 1_463)
        assert record["theoretical_speedup"] > 1.0  # something was factorised
        assert 0.0 <= record["accuracy"]["test"] <= 1.0
        assert "before_finetune_test" in record["accuracy"]
    # A lower energy keeps fewer (or equal) parameters.
    assert e50["params"] <= e90["params"] <= base["params"]


def test_relative_figures_on_known_records():
    base = {"params": 1000, "file_bytes": 8000, "macs": 50_000}
    small = {"params": 250, "file_bytes": 6000, "macs": 12_500}
    assert relative_figures(small, base) == {
        "param_reduction": 0.75,  # 1 - 250/1000
        "size_reduction": 0.25,  # 1 - 6000/8000
        "mac_reduction": 0.75,  # 1 - 12,500/50,000
        "theoretical_speedup": 4.0,  # 50,000 / 12,500
    }


def test_pipeline_seed_splits_and_seeds_training(pipeline_run):
    out, _, logs = pipeline_run
    settings = json.loads((out / "results.json").read_text())["settings"]
    assert settings["seed"] == 3
    assert settings["train"]["seed"] == settings["finetune"]["seed"] == 3


def from_base(pipeline_run, out_dir, compress: CompressOptions, **options) -> PipelineConfig:
    """A run from the module's trained base model at one setting, without fine-tuning."""
    out, _, _ = pipeline_run
    return PipelineConfig(
        dataset="tiny",
        out_dir=out_dir,
        energies=(),
        target_macs=(),
        base=out / "base.keras",
        compress=compress,
        finetune=FitConfig(epochs=0),
        **options,
    )


def test_pipeline_with_a_rank_fraction_makes_one_model(pipeline_run, tmp_path):
    config = from_base(pipeline_run, tmp_path, CompressOptions(fraction=0.5, exclude=("logits",)))
    records = run_pipeline(config, data=tiny_dataset(), log=lambda _: None)
    assert [r["name"] for r in records] == ["base", "f0.5"]
    layers = records[1]["compression"]["layers"]
    assert {layer["name"] for layer in layers if layer["status"] == "factorised"} <= set(POSITIONS)
    # half of each full rank, e.g. s2b1_b_conv's 72 x 8 matrix keeps rank 4
    by_name = {layer["name"]: layer for layer in layers}
    assert by_name["s2b1_b_conv"]["rank_kept"] == 4
    assert by_name["logits"]["status"] == "kept: excluded by pattern"
    assert (records[1]["params"], records[1]["macs"]) == hand_cost(layers)


def test_pipeline_takes_one_rank_policy():
    with pytest.raises(LowrankEdgeError, match="choose --rank or --rank-fraction alone"):
        PipelineConfig(compress=CompressOptions(rank=4)).compress_settings()
    config = PipelineConfig(energies=(0.5, 0.9), target_macs=())
    assert [o.label() for o in config.compress_settings()] == ["e50", "e90"]
    assert [o.label() for o in PipelineConfig().compress_settings()] == ["m0.5", "m0.33", "m0.2"]
    config = PipelineConfig(energies=(0.9,), target_params=(0.2,))
    assert [o.label() for o in config.compress_settings()] == [
        "e90",
        "m0.5",
        "m0.33",
        "m0.2",
        "p0.2",
    ]
    with pytest.raises(LowrankEdgeError, match="nothing to compress"):
        PipelineConfig(target_macs=()).compress_settings()


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


def test_calibration_reads_only_the_training_split(pipeline_run):
    """With NaN validation and test images, a whitened, BN-re-estimated compression still
    gives finite weights: its calibration images came from the training split alone."""
    import dataclasses

    import numpy as np

    from lowrank_edge.model.saving import load_model
    from lowrank_edge.pipeline.run import compress_and_finetune

    out, _, _ = pipeline_run
    data = tiny_dataset()
    poisoned = dataclasses.replace(
        data,
        x_val=np.full_like(data.x_val, np.nan),
        x_test=np.full_like(data.x_test, np.nan),
    )
    options = CompressOptions(target_macs=0.7, bn_recalibrate=True, calibration_images=32)
    result = compress_and_finetune(
        load_model(out / "base.keras"), options, poisoned, None, log=lambda _: None
    )
    assert all(np.isfinite(w).all() for w in result.model.get_weights())
    assert result.compression["settings"]["factoriser"] == "whitened"
    assert result.compression["settings"]["calibration_images"] == 32


def test_the_closing_bench_follows_the_exported_formats():
    """The closing bench times the runtimes the exports feed, and runs only after exports."""
    from lowrank_edge.pipeline.run import _ship_step
    from lowrank_edge.pipeline.ship import ShipStep

    ship = ShipStep(max_accuracy_drop=0.3)
    both = PipelineConfig(export_formats=("tflite", "onnx"), ship=ship)
    assert _ship_step(both).backends == ("litert", "onnxruntime")
    assert _ship_step(both).max_accuracy_drop == 0.3
    only_onnx = PipelineConfig(export_formats=("onnx",), ship=ship)
    assert _ship_step(only_onnx).backends == ("onnxruntime",)
    assert _ship_step(PipelineConfig(export_formats=(), ship=ship)) is None
    assert _ship_step(PipelineConfig(export_formats=("tflite",), ship=None)) is None


def test_an_existing_bench_folder_is_refused_before_any_training(tmp_path):
    """Without --overwrite the run stops before training when its bench results exist."""
    from lowrank_edge.pipeline.ship import ShipStep

    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "results.jsonl").write_text("precious\n")
    config = PipelineConfig(
        dataset="tiny", out_dir=tmp_path, target_macs=(0.5,), export_formats=("tflite",),
        ship=ShipStep(), model=TINY,
    )  # fmt: skip
    with pytest.raises(LowrankEdgeError, match="results.jsonl.*--overwrite"):
        run_pipeline(config, data=tiny_dataset(), log=lambda line: None)
    assert not (tmp_path / "base.keras").exists()
    assert (tmp_path / "bench" / "results.jsonl").read_text() == "precious\n"


def test_a_variant_failing_its_export_gate_is_marked_not_benched_and_reported(
    pipeline_run, tmp_path, monkeypatch
):
    """The gate itself is tested in test_export_gates; here its verdict on int8-dynamic is
    forced to a failure to follow it through the pipeline: the run goes on, the file is
    written and marked, the closing bench skips it, results.json and report.md name it."""
    from harness.bench import FAST_POLICY

    from lowrank_edge.export import exporter
    from lowrank_edge.export.gates import Verdict
    from lowrank_edge.pipeline.ship import ShipStep

    real_judge = exporter.judge

    def judge(variant, *args):
        if variant == "int8-dynamic":
            return Verdict("test-accuracy", False, {"max_drop_points": 1.0}, "drop 5.00 points")
        return real_judge(variant, *args)

    monkeypatch.setattr(exporter, "judge", judge)
    config = from_base(
        pipeline_run,
        tmp_path,
        CompressOptions(fraction=0.5, factoriser="svd"),
        export_formats=("tflite",),
        tflite_variants=("float32", "int8-dynamic"),
        # a budget every file meets: the tiny base's accuracy varies between runs (augmented
        # training is not bit-reproducible), and the recommendation is not what is tested here
        ship=ShipStep(batch=1, policy=FAST_POLICY, max_accuracy_drop=100.0),
    )
    records = run_pipeline(config, data=tiny_dataset(), log=lambda _: None)
    for record in records:
        assert record["export"]["failed_gates"] == [
            {
                "artifact": "tflite-int8-dynamic",
                "gate": "test-accuracy",
                "failure": "drop 5.00 points",
            }
        ]
        assert (tmp_path / record["name"] / f"{record['name']}-int8-dynamic.tflite").is_file()
    timed = [
        json.loads(line) for line in (tmp_path / "bench" / "results.jsonl").read_text().splitlines()
    ]
    assert timed and {r["artifact"] for r in timed} == {"tflite-float32"}
    report = (tmp_path / "report.md").read_text()
    assert "## Exported files that failed their gate" in report
    assert "| f0.5 | tflite-int8-dynamic | test-accuracy | drop 5.00 points |" in report
    summary = json.loads((tmp_path / "results.json").read_text())
    assert summary["recommendation"]["conditions"][0]["artifact"].endswith("tflite-float32")
    # the original's fastest (here its only) precision gets a latency table and a headroom
    [headroom] = summary["recommendation"]["shipped_headroom"]
    assert (headroom["backend"], headroom["precision"]) == ("litert", "float32")
    assert (
        headroom["headroom"] >= 1.0
        and (tmp_path / "bench" / "latency-table-shipped.json").is_file()
    )
    report = (tmp_path / "report.md").read_text()
    assert "## Low-rank in the precision that ships" in report


def test_the_ship_section_quotes_paired_speedups_with_their_spread_and_ties():
    """The main job's "which file to ship" says what each speedup is (paired, IQR, rounds),
    which files it is tied with, and that an old bench's figure is not paired."""
    from lowrank_edge.pipeline.report import ship_section

    chosen = {
        "backend": "litert", "threads": 1, "batch": 32, "machine": "vm, Xeon, 2 CPUs",
        "problem": None, "artifact": "m0.33 tflite-int8-dynamic", "file": "m.tflite",
        "bytes": 41_000, "speedup": 1.62, "speedup_kind": "paired",
        "speedup_iqr": {"q1": 1.55, "q3": 1.70, "rounds": 15}, "drop_pp": 0.1,
        "tie_within_spread": True, "tied_with": ["base tflite-int8-dynamic"],
        "runner_up": "base tflite-int8-dynamic",
    }  # fmt: skip
    old = {**chosen, "backend": "onnxruntime", "speedup_iqr": None, "tied_with": [],
           "speedup_kind": "p50 ratio, not paired", "tie_within_spread": False}  # fmt: skip
    summary = {"recommendation": {"bench_dir": "out/bench", "max_accuracy_drop_pp": 0.5,
                                  "conditions": [chosen, old]}}  # fmt: skip
    text = ship_section(summary)
    assert "1.62x [1.55–1.70, 15 rounds]" in text
    assert "tie within spread with base tflite-int8-dynamic" in text
    assert "1.62x (p50 ratio, not paired)" in text
    assert "Each speedup is paired" in text


def test_the_main_job_flags_each_low_rank_file_slower_than_the_original_in_its_precision(
    tmp_path,
):
    """Same-precision cells from the closing bench: e50's float32 file is faster than the
    original's float32, its int8 file slower than the original's int8 (on a VNNI CPU the
    reason says int8 runs on VNNI); the report flags that cell and gives the reason."""
    from lowrank_edge.pipeline.precision_cells import same_precision_cells
    from lowrank_edge.pipeline.report import same_precision_section

    results = _two_model_bench(tmp_path, base_int8_ms=0.3)
    records = [json.loads(line) for line in results.read_text().splitlines()]
    for record in records:  # a VNNI CPU, and e50 with half the MACs
        record["system"]["cpu_features"] = {"avx2": True, "vnni": True}
        record["theoretical_speedup"] = 2.0 if record["model"] == "e50" else 1.0
    results.write_text("".join(json.dumps(r) + "\n" for r in records))

    cells = same_precision_cells(tmp_path / "bench")
    by_variant = {c["variant"]: c for c in cells}
    assert [c["model"] for c in cells] == ["e50", "e50"]  # the original is the reference
    assert by_variant["float32"]["speedup"] == pytest.approx(1.25)
    assert not by_variant["float32"]["slower"] and by_variant["float32"]["reason"] is None
    int8 = by_variant["int8-full"]
    assert int8["slower"] and int8["speedup"] == pytest.approx(0.75)
    assert int8["reason"].startswith("it needs 2.00x fewer MACs, but int8 runs on VNNI here")
    text = same_precision_section({"recommendation": {"same_precision": cells}})
    assert "| litert | float32 | 1.25x [1.25–1.25] |" in text
    assert "| litert | int8-full | **0.75x [0.75–0.75] slower** |" in text
    assert "1 of 2 files are slower than the original in their own precision" in text
    assert "* e50, litert int8-full (0.75x): it needs 2.00x fewer MACs" in text


def test_the_headroom_advice_follows_the_original_s_fastest_precision(tmp_path):
    """The original's fastest file per runtime is found from its paired speedups; a headroom
    below 1.2x says low-rank adds nothing there, above it gives the command to run."""
    from lowrank_edge.benchmark.latency_table import Condition
    from lowrank_edge.pipeline.shipped_headroom import _advice, fastest_original_precisions

    _two_model_bench(tmp_path, base_int8_ms=0.5)
    assert fastest_original_precisions(tmp_path / "bench") == {"litert": ("int8-full", 2.0)}
    condition = Condition("litert", 1, 32, "int8-full")
    low = _advice(condition, 1.04, Path("b.keras"), Path("t.json"))
    assert low.startswith(
        "low-rank adds nothing worth a model to int8-full on this CPU: headroom 1.04x"
    )
    high = _advice(condition, 1.5, Path("b.keras"), Path("t.json"))
    assert "--precision int8-full --target-speedup 1.35" in high and "up to 1.50x" in high


def _two_model_bench(folder: Path, base_int8_ms: float) -> Path:
    """A bench of `base` and `e50` (TFLite float32 and int8-full, synthetic timings: float32
    1.0 and 0.8 ms, int8 `base_int8_ms` and 0.4 ms) in `folder/bench`; its results file."""
    from harness.bench_records import FakeArtifact, Group, write_bench, write_export

    artifacts = [FakeArtifact("tflite", "float32", 1000, 0.99),
                 FakeArtifact("tflite", "int8-full", 300, 0.99)]  # fmt: skip
    exports = {name: write_export(folder / name, name, artifacts) for name in ("base", "e50")}
    groups = [
        Group("litert", "float32", {"base": [1.0, 1.0], "e50": [0.8, 0.8]}),
        Group("litert", "int8-full", {"base": [base_int8_ms] * 2, "e50": [0.4, 0.4]}),
    ]
    return write_bench(folder / "bench", "dev", exports, groups)
