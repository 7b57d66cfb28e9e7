"""Per-layer attribution of ONNX Runtime profiles.

Synthetic traces (ORT's JSON format, ORT's node naming) pin each naming rule; a tiny Keras
model with known layer names (Conv2D+BN+ReLU, a nested sub-model, Dense), compressed,
exported with the project's tf2onnx path and profiled by ORT, checks the whole chain.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from lowrank_edge.benchmark.onnx_graph import GraphNode, OnnxGraph, read_onnx_graph
from lowrank_edge.benchmark.profiling import (
    UNATTRIBUTED,
    LayerPaths,
    compare_layers,
    is_compute_op,
    layer_times,
    parse_ort_trace,
)
from lowrank_edge.benchmark.reporting.markdown import profile_section
from lowrank_edge.errors import DataFormatError

CALIBRATION_RTOL = 1e-9  # calibrated sums are exact up to float rounding


def write_trace(path: Path, runs: list[list[tuple[str, str, int]]]) -> Path:
    """An ORT-style profile: per run a `model_run` event and one `Node` event per kernel."""
    events = [{"cat": "Session", "name": "session_initialization", "ts": 0, "dur": 5, "args": {}}]
    ts = 100
    for nodes in runs:
        start = ts
        for name, op, dur in nodes:
            events.append(
                {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur,
                 "ph": "X", "args": {"op_name": op, "provider": "CPUExecutionProvider"}}
            )  # fmt: skip
            ts += dur + 1
        events.append({"cat": "Session", "name": "model_run", "ts": start, "dur": ts - start})
        ts += 10
    path.write_text(json.dumps(events))
    return path


def node(name: str, op: str, inputs: tuple[str, ...], output: str | None = None) -> GraphNode:
    return GraphNode(name, op, inputs, (output or f"{name}:0",))


# Exported graphs as tf2onnx writes them: Conv+BatchNorm folded into one Conv named after the
# BatchNorm's op, its weight named after the convolution; a nested sub-model `block`.
BASELINE_GRAPH = OnnxGraph(
    [
        node("net_1/bn_a_1/batchnorm/mul_1__6", "Transpose", ("image",)),
        node("net_1/bn_a_1/batchnorm/mul_1", "Conv",
             ("net_1/bn_a_1/batchnorm/mul_1__6:0", "net_1/conv_a_1/convolution/merged_input:0")),
        node("net_1/relu_a_1/Relu", "Relu", ("net_1/bn_a_1/batchnorm/mul_1:0",)),
        node("net_1/block_1/conv_b_1/convolution", "Conv",
             ("net_1/relu_a_1/Relu:0", "net_1/block_1/conv_b_1/convolution/ReadVariableOp:0")),
        node("net_1/block_1/add_b_1/Add", "Add",
             ("net_1/block_1/conv_b_1/convolution:0", "net_1/relu_a_1/Relu:0")),
        node("net_1/dense_1/MatMul", "MatMul",
             ("net_1/block_1/add_b_1/Add:0", "net_1/dense_1/Cast/ReadVariableOp:0")),
    ]
)  # fmt: skip
BASELINE_RUN = [
    ("net_1/bn_a_1/batchnorm/mul_1__6", "Transpose", 3),
    ("net_1/relu_a_1/Relu:0_nchwc", "Conv", 100),  # ORT: Conv+Relu fused, NCHWc, named by output
    ("net_1/block_1/add_b_1/Add:0_nchwc", "Conv", 60),  # ORT: Conv+Add fused
    ("ReorderOutput", "ReorderOutput", 7),  # ORT-inserted layout node
    ("fused net_1/dense_1/MatMul/MatMulAddFusion", "Gemm", 40),
]
COMPRESSED_GRAPH = OnnxGraph(
    [
        node("net_1/conv_a_lr_a_1/convolution__9", "Transpose", ("image",)),
        node("net_1/conv_a_lr_a_1/convolution", "Conv",
             ("net_1/conv_a_lr_a_1/convolution__9:0",
              "net_1/conv_a_lr_a_1/convolution/ReadVariableOp:0")),
        # the second factor, folded with the BatchNorm: named after the BN, weight after lr_b
        node("net_1/bn_a_1/batchnorm/mul_1", "Conv",
             ("net_1/conv_a_lr_a_1/convolution:0",
              "net_1/conv_a_lr_b_1/convolution/merged_input:0")),
        node("net_1/relu_a_1/Relu", "Relu", ("net_1/bn_a_1/batchnorm/mul_1:0",)),
        node("net_1/block_1/conv_b_1/convolution", "Conv",
             ("net_1/relu_a_1/Relu:0", "net_1/block_1/conv_b_1/convolution/ReadVariableOp:0")),
        node("net_1/block_1/add_b_1/Add", "Add",
             ("net_1/block_1/conv_b_1/convolution:0", "net_1/relu_a_1/Relu:0")),
        node("Conv__77", "Conv", ("net_1/block_1/add_b_1/Add:0", "const_fold_opt__78")),
        node("net_1/dense_lr_a_1/MatMul", "MatMul",
             ("Conv__77:0", "net_1/dense_lr_a_1/Cast/ReadVariableOp:0")),
        node("net_1/dense_lr_b_1/MatMul", "MatMul",
             ("net_1/dense_lr_a_1/MatMul:0", "net_1/dense_lr_b_1/Cast/ReadVariableOp:0")),
    ]
)  # fmt: skip
COMPRESSED_RUN = [
    ("net_1/conv_a_lr_a_1/convolution__9", "Transpose", 3),
    ("net_1/conv_a_lr_a_1/convolution:0_nchwc", "Conv", 30),
    ("ReorderOutput_token_8", "ReorderOutput", 4),
    ("net_1/relu_a_1/Relu:0_nchwc", "Conv", 20),  # second factor + BN + ReLU in one kernel
    ("net_1/block_1/conv_b_1/convolution:0_nchwc", "Conv", 50),
    ("net_1/block_1/add_b_1/Add", "Add", 6),  # not fused here: no kernel of its own in baseline
    ("ReorderOutput", "ReorderOutput", 7),
    ("Conv__77", "Conv", 9),  # anonymous, weight unscoped: attributed to nothing
    ("net_1/dense_lr_a_1/MatMul", "MatMul", 10),
    ("net_1/dense_lr_b_1/MatMul_token_2", "MatMul", 5),
]


def _warm_up_run(run):
    return [(name, op, dur * 10) for name, op, dur in run]  # slow first run, to be skipped


def synthetic_times(tmp_path: Path):
    base_trace = write_trace(tmp_path / "b.json", [_warm_up_run(BASELINE_RUN), BASELINE_RUN])
    model_trace = write_trace(tmp_path / "m.json", [COMPRESSED_RUN, COMPRESSED_RUN])
    base = layer_times(*parse_ort_trace(base_trace, skip_runs=1), BASELINE_GRAPH)
    model = layer_times(*parse_ort_trace(model_trace), COMPRESSED_GRAPH)
    return base, model


def test_parse_skips_warm_up_runs(tmp_path):
    path = write_trace(tmp_path / "p.json", [_warm_up_run(BASELINE_RUN), BASELINE_RUN])
    nodes, runs = parse_ort_trace(path, skip_runs=1)
    assert runs == 1
    assert [n.dur for n in nodes] == [3, 100, 60, 7, 40]
    assert nodes[1].name == "net_1/relu_a_1/Relu:0_nchwc" and nodes[1].op == "Conv"
    assert parse_ort_trace(path, skip_runs=5) == ([], 0)


def test_parse_rejects_a_file_that_is_not_a_profile(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataFormatError, match="bad.json: not an ONNX Runtime profile"):
        parse_ort_trace(bad)


def test_graph_reader_rejects_bytes_that_are_not_onnx():
    with pytest.raises(DataFormatError, match="model.onnx: not a readable ONNX model"):
        read_onnx_graph(b"\xff\xff\xff", "model.onnx")
    with pytest.raises(DataFormatError, match="no graph nodes"):
        read_onnx_graph(b"\x08\x07", "model.onnx")  # ir_version only


def test_layer_paths_keep_nested_models_and_drop_model_scope_and_uniquifier():
    paths = LayerPaths(COMPRESSED_GRAPH)
    assert paths.path("net_1/block_1/conv_b_1/convolution/ReadVariableOp:0") == "block/conv_b"
    assert paths.path("net_1/bn_a_1/batchnorm/mul_1") == "bn_a"  # op scope `batchnorm` stops it
    assert paths.path("net_1/conv_a_lr_a_1/convolution__9") == "conv_a_lr_a"
    assert paths.path("const_fold_opt__78") is None and paths.path("Conv__77") is None


def test_layer_paths_keep_names_when_not_every_scope_is_uniquified():
    graph = OnnxGraph(
        [node(n, "MatMul", ("x", "w")) for n in ("m/dense_1/MatMul", "m/dense_2/MatMul")]
        + [node("m/logits/MatMul", "MatMul", ("x", "w"))]
    )
    paths = LayerPaths(graph)
    assert paths.path("m/dense_1/MatMul") == "dense_1"  # real layer names, not TF's suffix
    assert paths.path("m/logits/MatMul") == "logits"


def test_every_kernel_finds_its_layer_and_no_row_merges_two_layers(tmp_path):
    base, model = synthetic_times(tmp_path)
    assert base.kernels == {
        "conv_a": ["net_1/bn_a_1/batchnorm/mul_1__6 (Transpose)",
                   "net_1/relu_a_1/Relu:0_nchwc (Conv)"],
        "block/conv_b": ["net_1/block_1/add_b_1/Add:0_nchwc (Conv)"],
        UNATTRIBUTED: ["ReorderOutput (ReorderOutput)"],
        "dense": ["fused net_1/dense_1/MatMul/MatMulAddFusion (Gemm)"],
    }  # fmt: skip
    # The first factor's partner was fused into the BN+ReLU kernel: found by its weight, it
    # joins conv_a, and the layers after it keep their own rows.
    assert model.kernels["conv_a"] == [
        "net_1/conv_a_lr_a_1/convolution__9 (Transpose)",
        "net_1/conv_a_lr_a_1/convolution:0_nchwc (Conv)",
        "net_1/relu_a_1/Relu:0_nchwc (Conv)",
    ]
    assert model.kernels["block/add_b"] == ["net_1/block_1/add_b_1/Add (Add)"]
    assert model.kernels[f"{UNATTRIBUTED} Conv__77"] == ["Conv__77 (Conv)"]
    assert model.kernels[UNATTRIBUTED] == [
        "ReorderOutput_token_8 (ReorderOutput)",
        "ReorderOutput (ReorderOutput)",
    ]
    assert model.factorised == {"conv_a", "dense"}
    assert model.us["conv_a"] == pytest.approx(53.0) and model.us["dense"] == pytest.approx(15.0)
    for times in (base, model):
        assert not any("+" in row for row in times.us)
        assert _compute_kernels(times, UNATTRIBUTED) == 0


def test_rows_compare_layers_and_zero_baseline_rows_have_no_speedup(tmp_path):
    base, model = synthetic_times(tmp_path)
    rows = {row["layer"]: row for row in compare_layers(base, model)}
    conv = rows["conv_a"]
    assert (conv["baseline_us"], conv["model_us"]) == (pytest.approx(103.0), pytest.approx(53.0))
    assert conv["factorised"] and conv["speedup"] == pytest.approx(103 / 53)
    add = rows["block/add_b"]
    assert add["baseline_us"] == 0 and add["speedup"] is None
    assert "no kernel of its own in the baseline" in add["note"]
    assert rows[f"{UNATTRIBUTED} Conv__77"]["speedup"] is None
    assert list(rows)[:4] == ["conv_a", "block/conv_b", UNATTRIBUTED, "dense"]  # execution order
    assert rows["conv_a"]["baseline_calibrated_us"] is None  # no timed p50 given


def test_calibrated_rows_add_up_to_the_timed_whole_model_p50(tmp_path):
    base, model = synthetic_times(tmp_path)
    rows = compare_layers(base, model, baseline_p50_us=180.0, model_p50_us=120.0)
    assert sum(r["baseline_us"] for r in rows) == pytest.approx(210.0)  # every kernel, once
    assert sum(r["model_us"] for r in rows) == pytest.approx(144.0)
    base_sum = sum(r["baseline_calibrated_us"] for r in rows)
    model_sum = sum(r["model_calibrated_us"] for r in rows)
    assert base_sum == pytest.approx(180.0, rel=CALIBRATION_RTOL)
    assert model_sum == pytest.approx(120.0, rel=CALIBRATION_RTOL)
    conv = next(r for r in rows if r["layer"] == "conv_a")
    assert conv["calibrated_speedup"] == pytest.approx((103 * 180 / 210) / (53 * 120 / 144))
    assert rows[0]["calibration"]["model_scale"] == pytest.approx(120 / 144)


def _report_rows(rows: list[dict]) -> list[dict]:
    context = {"device": "d", "model": "e50", "baseline": "base", "variant": "float32"}
    return [context | {"threads": 1, "batch": 1} | row for row in rows]


def test_report_prints_na_and_why_never_0_00_for_a_layer_without_baseline_kernel(tmp_path):
    base, model = synthetic_times(tmp_path)
    rows = compare_layers(base, model, baseline_p50_us=180.0, model_p50_us=120.0)
    text = "\n".join(profile_section(_report_rows(rows)))
    add_line = next(line for line in text.splitlines() if line.startswith("| block/add_b |"))
    assert "0.00" not in add_line and "| n/a |" in add_line
    assert "no kernel of its own in the baseline" in add_line
    assert "Timed p50: baseline 180.0 µs, model 120.0 µs (1.50x)" in text
    assert "Profiled kernel sums per run: baseline 210.0 µs, model 144.0 µs (1.46x)" in text
    # rows written before this change (speedup stored as 0.0, no calibration) say so too
    old = [{"layer": "s1b1_add", "baseline_us": 0.0, "model_us": 5.3, "speedup": 0.0,
            "factorised": False}]  # fmt: skip
    old_text = "\n".join(profile_section(_report_rows(old)))
    assert "0.00" not in old_text and "| s1b1_add | 0.0 | 5.3 | n/a |" in old_text
    assert "cannot be compared" in old_text


# -- a real model: Keras -> compress -> tf2onnx -> ORT profile ------------------------------

FACTORISED = {"stem_conv", "block/conv", "fc"}
PROFILED_RUNS, TIMED_RUNS, WARM_UP = 30, 200, 5


def _tiny_model():
    import keras

    def conv_bn_relu(x, prefix: str):
        x = keras.layers.Conv2D(16, 3, padding="same", name=f"{prefix}conv")(x)
        x = keras.layers.BatchNormalization(name=f"{prefix}bn")(x)
        return keras.layers.ReLU(name=f"{prefix}relu")(x)

    keras.utils.set_random_seed(0)
    inner_input = keras.Input((12, 12, 16))
    block = keras.Model(inner_input, conv_bn_relu(inner_input, ""), name="block")
    image = keras.Input((12, 12, 3))
    x = block(conv_bn_relu(image, "stem_"))
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(32, activation="relu", name="fc")(x)
    return keras.Model(image, keras.layers.Dense(10, name="logits")(x), name="tiny")


def _profile(path: Path, prefix: Path):
    from lowrank_edge.runtime.runner import open_onnxruntime

    x = np.random.default_rng(0).random((1, 12, 12, 3), dtype=np.float32)
    with open_onnxruntime(path, intra_op_threads=1) as runner:
        for _ in range(WARM_UP):
            runner.predict(x)
        samples = []
        for _ in range(TIMED_RUNS):
            start = time.perf_counter_ns()
            runner.predict(x)
            samples.append(time.perf_counter_ns() - start)
    runner = open_onnxruntime(path, intra_op_threads=1, profile_prefix=str(prefix))
    for _ in range(WARM_UP + PROFILED_RUNS):
        runner.predict(x)
    trace = runner.end_profiling()
    runner.close()
    nodes, runs = parse_ort_trace(trace, skip_runs=WARM_UP)
    return nodes, runs, float(np.median(samples)) / 1000.0


@pytest.fixture(scope="module")
def real_profile(tmp_path_factory):
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf2onnx")
    from lowrank_edge.compress import FixedRankPolicy, compress_model
    from lowrank_edge.compress.graph import layer_calls
    from lowrank_edge.export.to_onnx import convert_onnx

    folder = tmp_path_factory.mktemp("profile")
    model = _tiny_model()
    result = compress_model(model, FixedRankPolicy(4), break_even=False, include=sorted(FACTORISED))
    out = {"layers": {call.path for call in layer_calls(model)}}
    for name, keras_model in (("base", model), ("e", result.model)):
        content = convert_onnx(keras_model, (None, 12, 12, 3))
        path = folder / f"{name}.onnx"
        path.write_bytes(content)
        nodes, runs, p50_us = _profile(path, folder / name)
        graph = read_onnx_graph(content, str(path))
        out[name] = (path, graph, nodes, runs, p50_us, layer_times(nodes, runs, graph))
    return out


def test_graph_reader_matches_onnx_on_an_exported_model(real_profile):
    onnx = pytest.importorskip("onnx")
    for name in ("base", "e"):
        path, graph = real_profile[name][:2]
        expected = [
            (n.name, n.op_type, tuple(n.input), tuple(n.output))
            for n in onnx.load(str(path)).graph.node
        ]
        assert [(n.name, n.op, n.inputs, n.outputs) for n in graph.nodes] == expected


def _compute_kernels(times, row: str) -> int:
    """How many of a row's kernels (listed as "name (op)") are convolutions or products."""
    return sum(is_compute_op(kernel.rsplit(" (", 1)[-1]) for kernel in times.kernels[row])


def test_real_profile_attributes_every_compute_kernel_to_one_original_layer(real_profile):
    layers = real_profile["layers"]
    assert {"stem_conv", "block/conv", "block/bn", "fc", "logits"} <= layers
    for name in ("base", "e"):
        nodes, times = real_profile[name][2], real_profile[name][5]
        assert set(times.us) <= layers | {UNATTRIBUTED}, times.kernels  # one layer per row
        compute_rows = {row for row in times.kernels if _compute_kernels(times, row)}
        assert compute_rows == {"stem_conv", "block/conv", "fc", "logits"}, times.kernels
        listed = sum(len(kernels) for kernels in times.kernels.values())
        assert listed == len({n.name for n in nodes})  # every kernel in exactly one row
    base, model = real_profile["base"][5], real_profile["e"][5]
    assert model.factorised == FACTORISED
    for row in FACTORISED:  # the layer's one kernel against both of its factors' kernels
        counts = (_compute_kernels(base, row), _compute_kernels(model, row))
        assert counts == (1, 2), (row, model.kernels[row])
    assert _compute_kernels(model, "logits") == 1


def test_real_profile_calibrates_to_the_timed_whole_model_p50(real_profile):
    *_, base_runs, base_p50, base = real_profile["base"]
    base_nodes = real_profile["base"][2]
    *_, model_p50, model = real_profile["e"]
    rows = compare_layers(base, model, base_p50, model_p50)
    assert sum(r["baseline_us"] for r in rows) == pytest.approx(
        sum(n.dur for n in base_nodes) / base_runs
    )
    assert sum(r["baseline_calibrated_us"] for r in rows) == pytest.approx(
        base_p50, rel=CALIBRATION_RTOL
    )
    assert sum(r["model_calibrated_us"] for r in rows) == pytest.approx(
        model_p50, rel=CALIBRATION_RTOL
    )
    for row in rows:
        assert row["speedup"] is None or row["speedup"] > 0
        if row["baseline_us"] == 0 or row["model_us"] == 0:
            assert row["speedup"] is None and row["note"]
    text = "\n".join(profile_section(_report_rows(rows)))
    assert "| 0.00 |" not in text and "Timed p50:" in text
