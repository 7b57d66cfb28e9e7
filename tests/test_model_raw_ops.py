"""Raw `keras.ops` nodes in Functional graphs (`x / 127.5 - 1`, hard-swish written as
`x * ReLU(6.)(x + 3.) * (1 / 6)`, a scale by a constant) next to Rescaling, ZeroPadding2D,
DepthwiseConv2D and Reshape: they hold no kernel, so cost counts nothing for them, analysis
lists no candidate and a rebuild re-applies them unchanged; every command works on them."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from harness.cli import run_cli, write_mnist_folder
from harness.models import (
    assert_same_outputs,
    build_raw_ops_model,
    run_serialization_test,
    sample_inputs,
)

from lowrank_edge.compress import FACTORISED, FractionPolicy, analyse_model, compress_model
from lowrank_edge.compress.cost import model_cost
from lowrank_edge.runtime import load_manifest

KERNEL_LAYERS = ["stem", "depthwise", "pointwise", "fc", "probs"]
FULL_RANK_ATOL = 1e-5  # probabilities of the full-rank rebuild vs the original


def test_cost_counts_only_the_kernel_layers():
    model = build_raw_ops_model()  # input 8x8x3, padded to 10x10, 5 classes
    cost = model_cost(model)
    by_name = {layer.name: layer for layer in cost.layers}
    # stem 3x3x3->8 on 8x8; depthwise 3x3 on 8x8x8; pointwise 8->16 on 8x8; fc 16x16; probs 16x5
    expected = {"stem": 8 * 8 * 8 * 27, "depthwise": 8 * 8 * 8 * 9, "pointwise": 8 * 8 * 16 * 8,
                "fc": 16 * 16, "probs": 16 * 5}  # fmt: skip
    assert {name: by_name[name].macs for name in expected} == expected
    assert cost.macs == sum(expected.values())
    assert cost.params == model.count_params()
    assert all(isinstance(layer, str) for layer in by_name)
    assert not any(layer.class_name in ("Add", "Multiply", "Divide", "Subtract")
                   for layer in cost.layers)  # fmt: skip


def test_analysis_lists_only_kernel_layers():
    analysis = analyse_model(build_raw_ops_model())
    assert [c.path for c in analysis.candidates] == KERNEL_LAYERS
    assert analysis.candidate("depthwise").unsupported == "DepthwiseConv2D"
    assert [c.path for c in analysis.factorable] == ["stem", "pointwise", "fc", "probs"]


@pytest.mark.parametrize("factoriser", ["svd", "whitened"])
def test_full_rank_rebuild_matches_and_reloads_in_safe_mode(factoriser, tmp_path):
    model = build_raw_ops_model()
    x = sample_inputs(model, 16, seed=1)
    calibration = sample_inputs(model, 32, seed=2) if factoriser == "whitened" else None
    result = compress_model(
        model,
        FractionPolicy(1.0),
        break_even=False,
        factoriser=factoriser,
        calibration=calibration,
        refit_dense=False,
    )
    statuses = {r.name: r.status for r in result.layers}
    assert [name for name, status in statuses.items() if status == FACTORISED] == [
        "stem", "pointwise", "fc", "probs"
    ]  # fmt: skip
    assert_same_outputs(model, result.model, x, atol=FULL_RANK_ATOL)
    reloaded = run_serialization_test(result.model, tmp_path, x)
    assert_same_outputs(model, reloaded, x, atol=FULL_RANK_ATOL)


def test_rebuild_reuses_the_raw_operations_unchanged():
    model = build_raw_ops_model()
    result = compress_model(model, FractionPolicy(0.5), break_even=False)
    raw = [type(op).__name__ for op in result.model.operations
           if not isinstance(op, keras.layers.Layer)]  # fmt: skip
    original = [type(op).__name__ for op in model.operations
                if not isinstance(op, keras.layers.Layer)]  # fmt: skip
    assert raw == original and "Add" in raw and "Multiply" in raw


@pytest.fixture(scope="module")
def cli_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("raw_ops_cli")
    write_mnist_folder(folder / "mnist")
    build_raw_ops_model((28, 28, 1), 10).save(folder / "raw.keras")
    return folder


def test_cli_ranks_compress_evaluate_export_on_raw_ops(cli_folder):
    model, data = (
        cli_folder / "raw.keras",
        ["--dataset", "mnist", "--data-dir", cli_folder / "mnist"],
    )
    result = run_cli("ranks", model, "--target-macs", "0.5", *data)
    assert result.exit_code == 0, result.output
    assert "depthwise" in result.output and "model: MACs" in result.output
    whitened = cli_folder / "whitened.keras"
    result = run_cli("compress", model, "--target-macs", "0.7", "--finetune-epochs", "1",
                     "--calibration-images", "32", *data, "--out", whitened)  # fmt: skip
    assert result.exit_code == 0, result.output
    sidecar = json.loads(whitened.with_name("whitened.compression.json").read_text())
    assert sidecar["totals"]["macs_after"] <= 0.7 * sidecar["totals"]["macs_before"]
    assert sidecar["finetune"]["from_logits"] is False  # the softmax head was detected
    svd = cli_folder / "svd.keras"
    result = run_cli("compress", model, "--target-macs", "0.7", "--factoriser", "svd",
                     "--finetune-epochs", "0", "--out", svd)  # fmt: skip
    assert result.exit_code == 0, result.output
    result = run_cli("evaluate", whitened, *data)
    assert result.exit_code == 0, result.output
    assert f"MACs         {sidecar['totals']['macs_after']:,}" in result.output
    out = cli_folder / "export"
    result = run_cli("export", whitened, "--format", "tflite,onnx", *data, "--out-dir", out)
    assert result.exit_code == 0, result.output
    manifest = load_manifest(out)
    assert len(manifest.artifacts) == 2
    assert all(a.parity.passed and a.parity.max_abs_diff < 1e-4 for a in manifest.artifacts)
    assert np.isclose(manifest.model.macs, sidecar["totals"]["macs_after"])
