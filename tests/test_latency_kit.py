"""The latency kit and its use: micro-models match their layer, the kit manifest checks out,
the latency-table command times every condition (TF-free for a kit), and a latency cost keeps
a layer dense where factorising it is slower.

One tiny kit (a strided conv and two Dense layers, 12 micro-models) is built per module.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from harness.bench import FAST_CLI_ARGS, TF_BLOCKER
from harness.latency import fake_table, tiny_model
from harness.models import (
    build_residual_model,
    build_shared_layer_model,
    set_low_rank_kernels,
)

from lowrank_edge.benchmark.latency_table import (
    Condition,
    load_latency_table,
)
from lowrank_edge.cli import main
from lowrank_edge.compress.analyse import analyse_model
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.export.variants import TFLITE_VARIANTS
from lowrank_edge.latency.hardware_cost import allocate_for_latency, headroom, latency_cost
from lowrank_edge.latency.kit import build_kit, check_kit_target
from lowrank_edge.latency.layer_signature import (
    call_signature,
    layer_calls_by_path,
    signature_keys,
)
from lowrank_edge.latency.micro_models import dense_micro_model, kit_ranks, pair_micro_model
from lowrank_edge.model.saving import save_model
from lowrank_edge.runtime.kit_manifest import MODEL, load_kit, read_kit_file

CONDITION = Condition("litert", 1, 1)


@pytest.fixture(scope="module")
def kit_setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("latency-kit")
    model = tiny_model()
    model_path = save_model(model, folder / "tiny.keras")
    kit = build_kit(model_path, folder / "kit", log=lambda message: None)
    return model, model_path, kit


def test_kit_ranks_stop_at_break_even():
    assert kit_ranks((36, 8)) == [1, 2, 4]  # 8 * 44 > 288
    assert kit_ranks((576, 64)) == [1, 2, 4, 8, 16, 24, 32, 40, 48, 56]
    assert kit_ranks((1, 10)) == []


def test_the_kit_lists_every_signature_at_every_rank(kit_setup):
    model, model_path, kit = kit_setup
    keys = signature_keys(analyse_model(model))
    assert keys["conv"] == (
        "Conv2D in=9x9x4 k=3x3x4x8 s=2x2 p=valid d=1x1 f=channels_last act=relu bias",
    )
    layers = [(e.key, e.rank) for e in kit.entries if e.kind != MODEL]
    assert layers == [
        (keys["conv"][0], None), (keys["conv"][0], 1), (keys["conv"][0], 2), (keys["conv"][0], 4),
        (keys["fc"][0], None), (keys["fc"][0], 1), (keys["fc"][0], 2), (keys["fc"][0], 4),
        (keys["logits"][0], None), (keys["logits"][0], 1), (keys["logits"][0], 2),
    ]  # fmt: skip
    assert [e.key for e in kit.entries if e.kind == MODEL] == ["model:tiny"]
    assert kit.signatures[keys["fc"][0]]["layers"] == ["fc"]
    assert kit.source["sha256"] and kit.source["model"] == str(model_path)
    for entry in kit.entries:
        assert set(entry.files) == {"tflite", "onnx"}
        assert all(entry.parity[fmt]["passed"] for fmt in ("tflite", "onnx"))
        assert read_kit_file(kit, entry, "onnx")  # checksum verified on the bytes


def test_micro_models_match_their_layer(kit_setup):
    model = kit_setup[0]
    analysis = analyse_model(model)
    x = np.random.default_rng(1).standard_normal((3, 9, 9, 4)).astype(np.float32)
    for path, calls in layer_calls_by_path(analysis).items():
        layer, signature = calls[0].layer, call_signature(calls[0])
        probe = keras.Model(model.inputs, [layer.input, layer.output])
        layer_in, layer_out = (np.asarray(t) for t in probe([x]))
        dense = np.asarray(dense_micro_model(layer, signature)(layer_in))
        np.testing.assert_allclose(dense, layer_out, rtol=1e-5, atol=1e-5, err_msg=path)
        full = min(signature.matrix_shape)
        pair = np.asarray(pair_micro_model(layer, signature, full)(layer_in))
        np.testing.assert_allclose(pair, layer_out, rtol=1e-4, atol=1e-4, err_msg=path)


def test_a_damaged_kit_file_is_refused(kit_setup, tmp_path):
    kit = kit_setup[2]
    entry = kit.entries[0]
    data = kit.to_dict()
    (tmp_path / "kit.json").write_text(json.dumps(data))
    for fmt, info in entry.files.items():
        (tmp_path / info.file).write_bytes((kit.folder / info.file).read_bytes() + b"x")
        with pytest.raises(LowrankEdgeError, match=r"SHA-256 mismatch.*rebuild the kit"):
            read_kit_file(load_kit(tmp_path), entry, fmt)


def test_a_kit_is_not_replaced_without_overwrite(kit_setup, tmp_path):
    kit = kit_setup[2]
    with pytest.raises(LowrankEdgeError, match="already exists; pass --overwrite"):
        check_kit_target(kit.folder, overwrite=False)
    check_kit_target(kit.folder, overwrite=True)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(LowrankEdgeError, match="holds no kit.json; refusing"):
        check_kit_target(tmp_path, overwrite=True)
    result = CliRunner().invoke(main, ["latency-kit", str(kit_setup[1]), "--out", str(kit.folder)])
    assert result.exit_code == 1 and "already exists" in result.output


def test_the_latency_table_command_times_every_condition(kit_setup, tmp_path):
    """Run TF-free in a subprocess: the device path never imports TensorFlow."""
    kit = kit_setup[2]
    out = tmp_path / "latency-table.json"
    code = TF_BLOCKER + (
        "from lowrank_edge.cli import main\n"
        "main(sys.argv[1:], standalone_mode=False)\n"
        "leaked = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]\n"
        "assert not leaked, leaked\n"
    )
    args = ["latency-table", str(kit.folder), "--backends", "litert,onnxruntime",
            "--threads", "1,2", "--batch", "1,2", "--out", str(out), *FAST_CLI_ARGS]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    conditions = [
        Condition(b, t, n) for b in ("litert", "onnxruntime") for t in (1, 2) for n in (1, 2)
    ]
    table = load_latency_table(out, conditions)
    assert len(table.entries) == len(kit.entries) * len(conditions)
    assert all(e.p50_ms is not None and e.p50_ms > 0 for e in table.entries), [
        e.error for e in table.entries if e.error
    ]
    assert table.kit["sha256"] and table.policy["rounds"] == 2
    assert table.device["cpu_count"]
    report = headroom(table, analyse_model(kit_setup[0]), Condition("onnxruntime", 2, 2))
    assert [h.layer for h in report.layers] == ["conv", "fc", "logits"]
    assert report.best_ms <= report.dense_ms


# --- the cost function, on a synthetic table -------------------------------------------------


def test_a_layer_whose_factors_are_slower_stays_dense():
    model = set_low_rank_kernels(build_residual_model(rank=2), rank=64, seed=3)
    analysis = analyse_model(model)
    slow = "res_a"

    def p50(path, rank, shape):
        if rank is None:
            return 1.0
        if path == slow:
            return 1.5 + 0.01 * rank  # factorising it costs time
        m, n = shape
        return 0.2 + 0.6 * rank * (m + n) / (m * n)

    table = fake_table(analysis, p50)
    keys = signature_keys(analysis)
    cost = latency_cost(table, CONDITION, signatures=keys)
    dense_total = sum(cost(c.spectrum, None) for c in analysis.factorable)
    fraction = 0.7
    plan = allocate_for_latency(analysis, table, fraction, CONDITION)
    assert slow not in plan.ranks
    assert plan.ranks, "the other layers are factorised"
    spent = sum(
        cost(c.spectrum, plan.ranks.get(c.path)) for c in analysis.factorable
    )  # fixed part is 0: the synthetic table has no whole-model entry
    assert spent <= fraction * dense_total + 1e-12
    for path, rank in plan.ranks.items():  # only measured ranks are chosen
        shape = analysis.candidate(path).spectrum.matrix_shape
        assert rank in kit_ranks(shape)
    assert cost(analysis.candidate("fc").spectrum, 3) == math.inf  # 3 was never measured
    report = headroom(table, analysis, CONDITION)
    best = {h.layer: h.best_rank for h in report.layers}
    assert best[slow] is None and best["fc"] == 1
    assert report.fixed_ms is None and report.speedup > 1


def test_a_shared_layer_costs_each_of_its_calls():
    analysis = analyse_model(build_shared_layer_model())
    keys = signature_keys(analysis)
    assert len(keys["shared_conv"]) == 2 and len(set(keys["shared_conv"])) == 1
    table = fake_table(analysis, lambda path, rank, shape: 1.0 if rank is None else 0.25)
    cost = latency_cost(table, CONDITION, signatures=keys)
    assert cost(analysis.candidate("shared_conv").spectrum, None) == 2.0


def test_a_table_missing_a_layer_or_condition_is_refused():
    analysis = analyse_model(build_shared_layer_model())
    keys = signature_keys(analysis)
    table = fake_table(analysis, lambda path, rank, shape: None if path == "logits" else 1.0)
    with pytest.raises(LowrankEdgeError, match="layer 'logits' .* has no dense latency"):
        latency_cost(table, CONDITION, signatures=keys)
    with pytest.raises(LowrankEdgeError, match="no measurements for litert, 4 thread"):
        latency_cost(table, Condition("litert", 4, 1), signatures=keys)


def test_the_latency_table_command_builds_the_kit_of_a_keras_model(kit_setup, tmp_path):
    out = tmp_path / "table.json"
    args = ["latency-table", str(kit_setup[1]), "--backends", "litert", "--out", str(out),
            *FAST_CLI_ARGS]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    litert = [Condition("litert", 1, 1, p) for p in TFLITE_VARIANTS]
    table = load_latency_table(out, litert)  # every LiteRT precision: the default for a model
    assert table.kit["built_from"] == str(kit_setup[1]) and table.kit["path"] is None
    assert len(table.entries) == len(kit_setup[2].entries) * len(TFLITE_VARIANTS)
    assert [e for e in table.entries if e.p50_ms is None] == []
    saved = json.loads(out.read_text())
    assert {e["precision"] for e in saved["entries"]} == set(TFLITE_VARIANTS)
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1 and "already exists; pass --overwrite" in again.output
