"""Per-layer attribution of ONNX Runtime profiles (traces written in ORT's JSON format)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lowrank_edge.benchmark.profiling import (
    UNATTRIBUTED,
    compare_layers,
    fused_aliases,
    node_scopes,
    parse_ort_trace,
    trace_profile,
)
from lowrank_edge.errors import DataFormatError


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


# ORT fuses Conv(+BatchNorm)+Relu into one node named after the Relu's scope.
BASELINE_RUN = [
    ("net_1/conv_a_1/convolution__6", "Reshape", 3),
    ("net_1/relu_a_1/Relu:0_nchwc", "Conv", 100),
    ("ReorderOutput_token_2", "ReorderOutput", 7),
    ("net_1/dense_1/MatMul", "MatMul", 40),
]
COMPRESSED_RUN = [
    ("net_1/conv_a_lr_a_1/convolution__6", "Reshape", 3),
    ("net_1/conv_a_lr_a_1/convolution:0_nchwc", "Conv", 30),
    ("net_1/relu_a_1/Relu:0_nchwc", "Conv", 20),  # the second factor, fused with the ReLU
    ("ReorderOutput_token_2", "ReorderOutput", 7),
    ("net_1/dense_lr_a_1/MatMul", "MatMul", 10),
    ("net_1/dense_lr_b_1/MatMul", "MatMul", 5),
]


def _warm_up_run(run):
    return [(name, op, dur * 10) for name, op, dur in run]  # slow first run, to be skipped


def test_parse_skips_warm_up_runs(tmp_path):
    path = write_trace(tmp_path / "p.json", [_warm_up_run(BASELINE_RUN), BASELINE_RUN])
    nodes, runs = parse_ort_trace(path, skip_runs=1)
    assert runs == 1
    assert [n.dur for n in nodes] == [3, 100, 7, 40]
    assert nodes[1].name == "net_1/relu_a_1/Relu:0_nchwc" and nodes[1].op == "Conv"
    assert parse_ort_trace(path, skip_runs=5) == ([], 0)


def test_parse_rejects_a_file_that_is_not_a_profile(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataFormatError, match="bad.json: not an ONNX Runtime profile"):
        parse_ort_trace(bad)


def test_node_scopes_strip_shared_prefix_and_uniquifier():
    names = [n for n, _, _ in COMPRESSED_RUN]
    scopes = node_scopes(names)
    assert scopes["net_1/conv_a_lr_a_1/convolution:0_nchwc"] == "conv_a_lr_a"
    assert scopes["net_1/relu_a_1/Relu:0_nchwc"] == "relu_a"
    assert scopes["ReorderOutput_token_2"] == UNATTRIBUTED


def test_node_scopes_keep_names_when_not_every_scope_is_uniquified():
    scopes = node_scopes(["m/dense_1/MatMul", "m/dense_2/MatMul", "m/logits/MatMul"])
    assert scopes["m/dense_1/MatMul"] == "dense_1"  # real layer names, not TF's suffix
    assert scopes["m/logits/MatMul"] == "logits"


def test_layers_compare_unfactorised_time_with_the_sum_of_factors(tmp_path):
    base = trace_profile(
        *parse_ort_trace(write_trace(tmp_path / "b.json", [BASELINE_RUN, BASELINE_RUN]))
    )
    model = trace_profile(
        *parse_ort_trace(write_trace(tmp_path / "m.json", [COMPRESSED_RUN, COMPRESSED_RUN]))
    )
    aliases = fused_aliases(model)
    assert aliases == [("conv_a", "relu_a")]  # conv_a_lr_b has no node: fused into relu_a
    rows = {row["layer"]: row for row in compare_layers(base, model, aliases)}
    conv = rows["conv_a+relu_a"]
    assert conv["baseline_us"] == pytest.approx(103.0)  # Reshape 3 + fused conv 100
    assert conv["model_us"] == pytest.approx(53.0)  # Reshape 3 + first factor 30 + second 20
    assert conv["factorised"] and conv["speedup"] == pytest.approx(103 / 53)
    dense = rows["dense"]
    assert (dense["baseline_us"], dense["model_us"], dense["factorised"]) == (40.0, 15.0, True)
    assert rows[UNATTRIBUTED]["baseline_us"] == 7.0 and not rows[UNATTRIBUTED]["factorised"]
    assert list(rows) == ["conv_a+relu_a", UNATTRIBUTED, "dense"]  # execution order


def test_node_scopes_see_through_ort_fused_prefix():
    # Real ORT names from an exported mini-ResNet: fusion prefixes "fused " to the node name.
    names = [
        "fused mini_resnet_1/fc_lr_b_1/MatMul/MatMulAddFusion",
        "mini_resnet_1/fc_lr_a_1/MatMul",
        "mini_resnet_1/s1b1_a_conv_lr_a_1/convolution:0_nchwc",
        "Conv__180:0_nchwc",
    ]
    scopes = node_scopes(names)
    assert scopes["fused mini_resnet_1/fc_lr_b_1/MatMul/MatMulAddFusion"] == "fc_lr_b"
    assert scopes["mini_resnet_1/s1b1_a_conv_lr_a_1/convolution:0_nchwc"] == "s1b1_a_conv_lr_a"
    assert scopes["Conv__180:0_nchwc"] == UNATTRIBUTED
