"""Data-aware SVD: whitened factors, calibration rows and moments, layer-by-layer fitting.

Oracles are numpy written out here: the plain truncated SVD, explicit convolutions through
Keras itself, and sub-models that expose a layer's input.
"""

import keras
import numpy as np
import pytest
from harness.models import (
    build_nested_model,
    build_residual_model,
    build_shared_layer_model,
    model_outputs,
    sample_inputs,
)

from lowrank_edge.compress import FractionPolicy, analyse_model, apply_plan, choose_ranks
from lowrank_edge.compress.calibration import (
    calibration_images,
    input_grams,
    kernel_rows,
)
from lowrank_edge.compress.data_aware import fitted_factors, whitened_analysis
from lowrank_edge.compress.whiten import (
    least_squares_kernel,
    whitened_factors,
    whitening_factor,
)
from lowrank_edge.errors import CompressionError

TINY = 1e-9  # damping small enough that the whitened optimum is the output-error optimum


def plain_truncation(w, rank):
    """The oracle: best rank-r approximation of W in the Frobenius norm (Eckart-Young)."""
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    return (u[:, :rank] * s[:rank]) @ vt[:rank]


def correlated_inputs(rows, dim, seed, sample_seed=None):
    """Anisotropic, correlated inputs (the distribution fixed by `seed`, the draw by
    `sample_seed`): what a whitening must take into account."""
    mix = np.random.default_rng(seed).normal(size=(dim, dim)) * np.logspace(0, -2, dim)[:, None]
    rng = np.random.default_rng(seed if sample_seed is None else sample_seed)
    return rng.normal(size=(rows, dim)) @ mix


def output_error(x, w, m):
    return float(np.linalg.norm(x @ (w - m)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_whitened_factors_beat_plain_svd_on_output_error(seed):
    x = correlated_inputs(400, 12, seed)
    held_out = correlated_inputs(400, 12, seed, sample_seed=seed + 100)
    w = np.random.default_rng(seed + 7).normal(size=(12, 9))
    gram = x.T @ x
    calibration_wins, held_out_gain = 0, []
    for rank in range(1, 9):
        a, b = whitened_factors(gram, w, rank, damping=TINY)
        plain = plain_truncation(w, rank)
        # guaranteed on the calibration inputs (up to round-off)
        assert output_error(x, w, a @ b) <= output_error(x, w, plain) * (1 + 1e-9) + 1e-9
        calibration_wins += output_error(x, w, a @ b) < output_error(x, w, plain)
        held_out_gain.append(output_error(held_out, w, plain) - output_error(held_out, w, a @ b))
    assert calibration_wins >= 6
    assert np.mean(held_out_gain) > 0  # lower on average over held-out inputs


def test_full_rank_is_exact_for_both_factorisers():
    x = correlated_inputs(200, 10, 3)
    w = np.random.default_rng(4).normal(size=(10, 6))
    a, b = whitened_factors(x.T @ x, w, 6)
    np.testing.assert_allclose(a @ b, w, atol=1e-8)
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(6, name="fc")])
    model.get_layer("fc").set_weights([w.astype("float32"), np.zeros(6, "float32")])
    analysis = analyse_model(model)
    for factors in (
        None,
        fitted_factors(analysis, _full_plan(analysis), x.astype("float32")).factors,
    ):
        result = apply_plan(analysis, _full_plan(analysis), factors)
        np.testing.assert_allclose(
            model_outputs(result.model, x.astype("float32")),
            model_outputs(model, x.astype("float32")),
            atol=1e-4,
        )


def _full_plan(analysis):
    return choose_ranks(analysis, FractionPolicy(1.0), break_even=False)


def test_least_squares_kernel_undoes_an_input_change():
    x = correlated_inputs(300, 8, 5)
    w = np.random.default_rng(6).normal(size=(8, 5))
    t = np.eye(8) + 0.3 * np.random.default_rng(7).normal(size=(8, 8))
    x_hat = x @ t  # the compressed model's inputs, an invertible change of the original's
    w_star = least_squares_kernel(x_hat.T @ x_hat, x_hat.T @ x, w, damping=1e-14)
    np.testing.assert_allclose(x_hat @ w_star, x @ w, atol=1e-6)


@pytest.mark.parametrize(
    "options",
    [
        dict(kernel_size=3, strides=1, padding="same"),
        dict(kernel_size=3, strides=2, padding="same"),
        dict(kernel_size=3, strides=2, padding="valid"),
        dict(kernel_size=3, dilation_rate=2, padding="same"),
        dict(kernel_size=(2, 3), strides=(1, 2), padding="valid"),
    ],
)
def test_kernel_rows_are_the_patches_the_conv_multiplies(options):
    layer = keras.layers.Conv2D(5, use_bias=False, **options)
    x = np.random.default_rng(0).random((2, 9, 9, 3), dtype=np.float32)
    out = np.asarray(layer(x))  # Keras itself is the oracle for stride/padding/dilation
    rows = kernel_rows(layer, x)
    kernel = layer.kernel.numpy().reshape(-1, 5)
    np.testing.assert_allclose(rows @ kernel, out.reshape(-1, 5), atol=1e-5)


def test_kernel_rows_of_a_dense_on_sequences():
    layer = keras.layers.Dense(4)
    x = np.random.default_rng(1).random((3, 7, 6), dtype=np.float32)
    assert kernel_rows(layer, x).shape == (21, 6)


def test_input_grams_match_the_layers_inputs():
    model = build_residual_model(rank=3)
    x = sample_inputs(model, n=5)
    grams = input_grams(model, x, ["res_b", "fc"], batch_size=2)
    for name in ("res_b", "fc"):
        layer = model.get_layer(name)
        inputs = np.asarray(keras.Model(model.inputs, layer.input)(x))
        rows = kernel_rows(layer, inputs).astype(np.float64)
        np.testing.assert_allclose(grams[name], rows.T @ rows, rtol=1e-5, atol=1e-6)


def test_input_grams_sum_over_every_call_of_a_shared_layer():
    model = build_shared_layer_model(rank=3)
    x = sample_inputs(model, n=3)
    stem = np.asarray(keras.Model(model.inputs, model.get_layer("stem").output)(x))
    conv = model.get_layer("shared_conv")
    first = np.asarray(conv(stem))
    expected = sum(
        kernel_rows(conv, inputs).astype(np.float64).T @ kernel_rows(conv, inputs)
        for inputs in (stem, first)
    )
    grams = input_grams(model, x, ["shared_conv"])
    np.testing.assert_allclose(grams["shared_conv"], expected, rtol=1e-5, atol=1e-5)


def test_capture_leaves_the_model_as_it_was():
    model = build_residual_model(rank=3)
    x = sample_inputs(model, n=2)
    before = model_outputs(model, x)
    input_grams(model, x, ["res_a"])
    assert "call" not in vars(model.get_layer("res_a"))
    np.testing.assert_array_equal(model_outputs(model, x), before)


def test_calibration_images_come_from_the_given_split_only():
    x_train = np.arange(50, dtype=np.float32).reshape(50, 1, 1, 1)
    picked = calibration_images(x_train, count=20, seed=3)
    assert len(picked) == 20 and len(np.unique(picked)) == 20
    assert set(picked.ravel()) <= set(x_train.ravel())
    assert not np.array_equal(picked, calibration_images(x_train, count=20, seed=4))
    with pytest.raises(CompressionError, match="training split is empty"):
        calibration_images(x_train[:0])


def _whole_model_error(model, compressed, x):
    return float(np.linalg.norm(model_outputs(model, x) - model_outputs(compressed, x)))


@pytest.mark.parametrize("build", [build_residual_model, build_nested_model])
def test_sequential_fitting_beats_independent_whitening_and_plain_svd(build):
    model = build(rank=8, seed=1)
    x = sample_inputs(model, n=48, seed=2)
    analysis = analyse_model(model)
    plan = choose_ranks(analysis, FractionPolicy(0.25), break_even=False)
    errors = {}
    for name, factors in {
        "plain": None,
        "independent": fitted_factors(analysis, plan, x, sequential=False).factors,
        "sequential": fitted_factors(analysis, plan, x, sequential=True).factors,
    }.items():
        errors[name] = _whole_model_error(model, apply_plan(analysis, plan, factors).model, x)
    assert errors["sequential"] < errors["independent"] < errors["plain"], errors


def test_whitened_analysis_puts_the_output_spectrum_in_place():
    model = build_residual_model(rank=3)
    x = sample_inputs(model, n=6)
    plain = analyse_model(model)
    whitened = whitened_analysis(plain, x, damping=TINY)
    layer = model.get_layer("fc")
    inputs = np.asarray(keras.Model(model.inputs, layer.input)(x)).astype(np.float64)
    expected = np.linalg.svd(inputs @ layer.kernel.numpy(), compute_uv=False)
    got = whitened.candidate("fc").spectrum.singular_values
    np.testing.assert_allclose(got[: len(expected)], expected, rtol=1e-3, atol=1e-4)
    assert whitened.candidate("fc").spectrum.macs == plain.candidate("fc").spectrum.macs


@pytest.mark.parametrize("rank", [1, 3, 5])
def test_tall_kernels_get_the_same_factors_without_the_cholesky_route(rank):
    x = correlated_inputs(300, 12, 8)
    w = np.random.default_rng(9).normal(size=(12, 5))  # n <= m: the eigen route
    a, b = whitened_factors(x.T @ x, w, rank)
    s = whitening_factor(x.T @ x)  # the oracle: S^-1 truncate_r(S W)
    u, values, vt = np.linalg.svd(s @ w, full_matrices=False)
    expected = np.linalg.solve(s, (u[:, :rank] * values[:rank]) @ vt[:rank])
    np.testing.assert_allclose(a @ b, expected, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(s @ a, axis=0) ** 2, values[:rank], rtol=1e-7)


def test_balancing_the_fitted_factors_leaves_the_compressed_model_outputs_unchanged(monkeypatch):
    from lowrank_edge.compress import factor

    model = build_residual_model(rank=3)
    x = sample_inputs(model, n=16)
    analysis = analyse_model(model)
    plan = choose_ranks(analysis, FractionPolicy(0.5), break_even=False)
    balanced = fitted_factors(analysis, plan, x).factors
    monkeypatch.setattr(factor, "balance_factors", lambda a, b: (a, b))  # as before balancing
    unbalanced = fitted_factors(analysis, plan, x).factors
    assert any(
        not np.allclose(balanced[p].kernel_a, unbalanced[p].kernel_a, rtol=1e-3) for p in balanced
    )  # balancing did rescale the whitened pairs
    outputs = [
        model_outputs(apply_plan(analysis, plan, f).model, x) for f in (balanced, unbalanced)
    ]
    # float32 rounding of the rescaled factors only: 1e-5 of the output scale
    np.testing.assert_allclose(*outputs, atol=1e-5 * np.max(np.abs(outputs[1])))
