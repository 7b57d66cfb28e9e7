"""compress_model on every model kind: outputs preserved, layers factorised, saves safely."""

import keras
import numpy as np
import pytest
from harness.models import (
    assert_same_outputs,
    build_branch_model,
    build_nested_model,
    build_residual_model,
    build_sequential_model,
    build_shared_layer_model,
    build_unsupported_model,
    leaf_layers,
    run_serialization_test,
    sample_inputs,
    set_low_rank_kernels,
)

from lowrank_edge.compress import FACTORISED, KEPT_BREAK_EVEN, EnergyPolicy, compress_model
from lowrank_edge.compress.cost import model_cost
from lowrank_edge.model.resnet import ResNetConfig, build_mini_resnet

ATOL = 1e-4  # logits of rank-k models after exact-rank factorisation (float32 round-off)
RANK = 2


def _stock_only(model):
    return all(
        type(layer).__module__.startswith("keras.src.layers.") for layer in leaf_layers(model)
    )


def _names(model):
    return {layer.name for layer in leaf_layers(model)}


@pytest.fixture(scope="module")
def residual():
    model = build_residual_model(RANK)
    return model, compress_model(model, EnergyPolicy(0.9999))


def test_residual_rank_k_model_is_fully_factorised_and_preserved(residual):
    model, result = residual
    assert [r.status for r in result.layers] == [FACTORISED] * 6
    assert {r.rank_kept for r in result.layers} == {RANK}
    assert all(r.energy_squared > 0.9999 for r in result.layers)
    assert_same_outputs(model, result.model, sample_inputs(model), ATOL)
    assert {"stem_lr_a", "stem_lr_b", "logits_lr_a", "logits_lr_b"} <= _names(result.model)
    assert not {"stem", "res_a", "logits"} & _names(result.model)
    assert _stock_only(result.model)


def test_compressed_model_reloads_with_safe_mode_and_identical_outputs(residual, tmp_path):
    _, result = residual
    reloaded = run_serialization_test(result.model, tmp_path)
    assert _names(reloaded) == _names(result.model)


def test_batchnorm_statistics_are_copied_not_shared(residual):
    model, result = residual
    old = model.get_layer("stem_bn")
    new = result.model.get_layer("stem_bn")
    for a, b in zip(old.get_weights(), new.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not {id(v) for v in model.weights} & {id(v) for v in result.model.weights}


def test_input_model_is_not_mutated():
    model = build_residual_model(RANK)
    weights = [w.copy() for w in model.get_weights()]
    names = [layer.name for layer in model.layers]
    calls = {layer.name: len(layer._inbound_nodes) for layer in model.layers}
    x = sample_inputs(model)
    before = np.asarray(model(x))
    compress_model(model, EnergyPolicy(0.5))
    assert [layer.name for layer in model.layers] == names
    assert {layer.name: len(layer._inbound_nodes) for layer in model.layers} == calls
    for a, b in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(before, np.asarray(model(x)))


def test_full_energy_without_break_even_reproduces_a_full_rank_model():
    config = ResNetConfig(num_classes=5, widths=(4, 8), blocks_per_stage=1, head_units=8)
    keras.utils.set_random_seed(0)
    model = build_mini_resnet(config)
    result = compress_model(model, EnergyPolicy(1.0), break_even=False)
    assert all(r.status == FACTORISED for r in result.layers)
    assert all(r.rank_kept == r.full_rank for r in result.layers)
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    assert_same_outputs(model, result.model, x, ATOL)
    assert result.totals.params_after > result.totals.params_before  # full rank costs more


def test_full_energy_with_break_even_keeps_full_rank_layers_dense():
    model = build_residual_model(rank=8)  # full-rank kernels
    result = compress_model(model, EnergyPolicy(1.0))
    assert {r.status for r in result.layers} == {KEPT_BREAK_EVEN}
    assert result.totals.params_after == result.totals.params_before
    assert_same_outputs(model, result.model, sample_inputs(model), 1e-6)


def test_sequential_model_stays_sequential(tmp_path):
    model = build_sequential_model(RANK)
    model.compile(loss="mse")
    result = compress_model(model, EnergyPolicy(0.9999))
    assert isinstance(result.model, keras.Sequential)
    assert result.model.compiled  # compile config carried over, like clone_model does
    assert [r.status for r in result.layers] == [FACTORISED] * 4
    assert_same_outputs(model, result.model, sample_inputs(model), ATOL)
    run_serialization_test(result.model, tmp_path)


def test_nested_sub_models_are_factorised_recursively(tmp_path):
    model = build_nested_model(RANK)
    result = compress_model(model, EnergyPolicy(0.9999))
    assert {r.name: r.status for r in result.layers} == {
        "stem": FACTORISED,
        "block/conv_a": FACTORISED,
        "block/conv_b": FACTORISED,
        "head/fc": FACTORISED,
        "head/logits": FACTORISED,
    }
    block, head = result.model.get_layer("block"), result.model.get_layer("head")
    assert isinstance(head, keras.Sequential) and not isinstance(block, keras.Sequential)
    assert {"conv_a_lr_a", "conv_a_lr_b", "bn_a"} <= {layer.name for layer in block.layers}
    assert {"fc_lr_a", "logits_lr_b"} <= {layer.name for layer in head.layers}
    assert_same_outputs(model, result.model, sample_inputs(model), ATOL)
    run_serialization_test(result.model, tmp_path)


def test_shared_layer_gets_one_shared_factor_pair(tmp_path):
    model = build_shared_layer_model(RANK)
    result = compress_model(model, EnergyPolicy(0.9999))
    assert all(r.status == FACTORISED for r in result.layers)
    new_names = [layer.name for layer in leaf_layers(result.model)]
    assert new_names.count("shared_conv_lr_a") == new_names.count("shared_dense_lr_b") == 1
    costs = {c.name: c for c in model_cost(result.model).layers}
    # called twice: MACs of both calls, params once
    assert costs["shared_conv_lr_a"].macs == 2 * (8 * 8) * RANK * (3 * 3 * 8)
    assert costs["shared_dense_lr_a"].params == 8 * RANK
    report = result.layer("shared_conv")
    assert report.macs_after == 2 * (8 * 8) * RANK * (3 * 3 * 8 + 8)
    assert_same_outputs(model, result.model, sample_inputs(model), ATOL)
    run_serialization_test(result.model, tmp_path)


def test_branches_are_factorised_and_preserved():
    model = build_branch_model(RANK)
    result = compress_model(model, EnergyPolicy(0.9999))
    assert [r.name for r in result.layers if r.factorised] == [
        "stem",
        "left",
        "right_dilated",
        "down",
        "logits",
    ]
    assert_same_outputs(model, result.model, sample_inputs(model), ATOL)


def test_dense_on_rank_3_inputs_is_factorised():
    inputs = keras.Input((4, 6))
    x = keras.layers.Dense(8, activation="relu", name="proj")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(6, name="out")(x))
    set_low_rank_kernels(model, 1)
    result = compress_model(model, EnergyPolicy(0.9999))
    assert [r.rank_kept for r in result.layers] == [1, 1]
    assert result.layer("proj").macs_before == 4 * 6 * 8
    assert result.layer("proj").macs_after == 4 * 1 * (6 + 8)
    assert_same_outputs(model, result.model, sample_inputs(model), ATOL)


def test_unsupported_layers_are_kept_with_reasons_and_weights():
    model = build_unsupported_model()
    result = compress_model(model, EnergyPolicy(1.0))
    assert {r.name: r.status for r in result.layers} == {
        "plain_conv": KEPT_BREAK_EVEN,
        "depthwise": "kept: unsupported (DepthwiseConv2D)",
        "grouped": "kept: unsupported (grouped Conv2D, groups=2)",
        "separable": "kept: unsupported (SeparableConv2D)",
        "transpose": "kept: unsupported (Conv2DTranspose)",
        "conv1d": "kept: unsupported (Conv1D)",
        "logits": KEPT_BREAK_EVEN,
    }
    depthwise = result.layer("depthwise")
    assert depthwise.rank_kept is None and depthwise.kernel_shape == (3, 3, 8, 1)
    assert depthwise.macs_before == depthwise.macs_after == 8 * 8 * 8 * 9
    assert_same_outputs(model, result.model, sample_inputs(model), 1e-6)
