"""Factorisation: numpy factors of kernels and the Keras factor-layer pair."""

import keras
import numpy as np
import pytest
from harness.models import low_rank_kernel
from keras import layers

from lowrank_edge.compress.factor import (
    balance_factors,
    canonical_signs,
    factor_kernels,
    factor_matrix,
    split_kernel,
)
from lowrank_edge.compress.split import split_layer
from lowrank_edge.compress.whiten import whitened_factors


def test_full_rank_factors_reconstruct_the_matrix():
    matrix = np.random.default_rng(0).standard_normal((7, 5))
    a, b = factor_matrix(matrix, 5)
    assert a.shape == (7, 5) and b.shape == (5, 5)
    np.testing.assert_allclose(a @ b, matrix, atol=1e-12)


def test_truncation_error_is_the_discarded_energy_and_factors_are_balanced():
    matrix = np.random.default_rng(1).standard_normal((9, 6))
    s = np.linalg.svd(matrix, compute_uv=False)
    a, b = factor_matrix(matrix, 2)
    # Eckart-Young: the squared Frobenius error is the sum of the dropped s_i^2.
    assert np.sum((matrix - a @ b) ** 2) == pytest.approx(np.sum(s[2:] ** 2), rel=1e-10)
    # sqrt(S) on both sides: column i of A and row i of B both have norm sqrt(s_i).
    np.testing.assert_allclose(np.linalg.norm(a, axis=0), np.sqrt(s[:2]), rtol=1e-10)
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), np.sqrt(s[:2]), rtol=1e-10)


def test_rank_out_of_range_is_rejected():
    with pytest.raises(ValueError, match=r"rank must be in \[1, 3\], got 4"):
        factor_matrix(np.ones((3, 5)), 4)


def test_split_conv_kernel_shapes_dtype_and_exact_low_rank_reconstruction():
    kernel = low_rank_kernel((3, 3, 4, 6), 2, np.random.default_rng(2))
    a, b = split_kernel(kernel, 2)
    assert a.shape == (3, 3, 4, 2) and b.shape == (1, 1, 2, 6)
    assert a.dtype == b.dtype == np.float32
    rebuilt = a.reshape(-1, 2) @ b.reshape(2, 6)
    np.testing.assert_allclose(rebuilt.reshape(kernel.shape), kernel, atol=1e-6)


def test_factor_kernels_give_the_same_factors_whichever_signs_the_svd_returned():
    """An SVD's component signs are arbitrary (CI once got two of them negated on a second
    worker): negating components on both sides must give the same layer kernels, each
    component's largest output-side entry positive, and the product unchanged exactly."""
    rng = np.random.default_rng(7)
    a, b = factor_matrix(rng.standard_normal((8, 5)), 3)
    flip = np.array([1.0, -1.0, -1.0])
    first = factor_kernels(a, b, (8, 5), np.float32)
    second = factor_kernels(a * flip, flip[:, None] * b, (8, 5), np.float32)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    largest = first[1][np.arange(3), np.argmax(np.abs(first[1]), axis=1)]
    assert (largest > 0).all()
    signed_a, signed_b = canonical_signs(a * flip, flip[:, None] * b)
    np.testing.assert_array_equal(signed_a @ signed_b, (a * flip) @ (flip[:, None] * b))


def test_split_dense_kernel_shapes():
    a, b = split_kernel(np.ones((5, 3), np.float32), 1)
    assert a.shape == (5, 1) and b.shape == (1, 3)
    np.testing.assert_allclose(a @ b, np.ones((5, 3)), atol=1e-6)


def _pair_output(split, x):
    """Run x through the factor chain with the split's weights set."""
    shape = x.shape
    for layer, weights in zip(split.layers, split.weights, strict=True):
        layer.build(shape)
        layer.set_weights(weights)
        shape = layer.compute_output_shape(shape)
    out = x
    for layer in split.layers:
        out = layer(out)
    return keras.ops.convert_to_numpy(out)


@pytest.mark.parametrize(
    "conv",
    [
        layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="c"),
        layers.Conv2D(6, (3, 2), dilation_rate=2, padding="valid", use_bias=False, name="c"),
    ],
)
def test_conv_pair_at_full_rank_matches_the_conv(conv):
    x = np.random.default_rng(3).random((2, 9, 9, 4), dtype=np.float32)
    conv.build(x.shape)
    if conv.use_bias:
        conv.bias.assign(np.linspace(-1, 1, 6, dtype=np.float32))
    expected = keras.ops.convert_to_numpy(conv(x))
    split = split_layer(conv, 6)
    first, second = split.layers
    assert (first.name, second.name) == ("c_lr_a", "c_lr_b")
    assert first.filters == 6 and not first.use_bias and first.activation.__name__ == "linear"
    assert (first.strides, first.padding, first.dilation_rate) == (
        conv.strides,
        conv.padding,
        conv.dilation_rate,
    )
    assert second.kernel_size == (1, 1) and second.strides == (1, 1)
    assert second.use_bias == conv.use_bias and second.activation is conv.activation
    np.testing.assert_allclose(_pair_output(split, x), expected, atol=1e-5)


def test_dense_pair_keeps_activation_and_bias_on_the_second_factor():
    dense = layers.Dense(4, activation="tanh", name="d")
    x = np.random.default_rng(4).random((3, 6), dtype=np.float32)
    dense.build(x.shape)
    dense.bias.assign(np.arange(4, dtype=np.float32) / 4)
    split = split_layer(dense, 2)
    first, second = split.layers
    assert (first.units, first.use_bias, second.units, second.use_bias) == (2, False, 4, True)
    assert second.activation is keras.activations.tanh
    # at rank 2 < 4 the pair is the rank-2 truncation of the kernel: U_2 diag(s_2) V_2^T
    u, sv, vt = np.linalg.svd(dense.kernel.numpy().astype(np.float64), full_matrices=False)
    truncated = (u[:, :2] * sv[:2]) @ vt[:2]
    expected = np.tanh(x @ truncated + dense.bias.numpy())
    np.testing.assert_allclose(_pair_output(split, x), expected, atol=1e-5)


def test_split_rejects_other_layers():
    with pytest.raises(TypeError, match="can only split Conv2D or Dense, got DepthwiseConv2D"):
        split_layer(layers.DepthwiseConv2D(3), 1)


def _component_norms(a, b):
    rank = a.shape[-1]
    norm_a = np.linalg.norm(a.reshape(-1, rank), axis=0)
    norm_b = np.linalg.norm(np.moveaxis(b, -2, 0).reshape(rank, -1), axis=1)
    return norm_a, norm_b


@pytest.mark.parametrize("shape", [(12, 7), (7, 12)])  # n <= m takes the eigen route
def test_balanced_factors_keep_the_product_and_equal_norms(shape):
    rng = np.random.default_rng(3)
    w = rng.normal(size=shape)
    x = rng.normal(size=(200, shape[0])) * np.logspace(0, -3, shape[0])  # skewed inputs
    pairs = {
        "svd": factor_matrix(w, 4),
        "whitened": whitened_factors(x.T @ x * 1e3, w, 4),  # summed moments: out of scale
    }
    for name, (a, b) in pairs.items():
        balanced_a, balanced_b = balance_factors(a, b)
        product_error = np.linalg.norm(balanced_a @ balanced_b - a @ b) / np.linalg.norm(w)
        assert product_error < 1e-5, name
        norm_a, norm_b = _component_norms(balanced_a, balanced_b)
        np.testing.assert_allclose(norm_a, norm_b, rtol=1e-6, err_msg=name)
    norm_a, norm_b = _component_norms(*pairs["whitened"])
    assert np.max(norm_b / norm_a) > 10  # the unbalanced whitened pair really was out of scale


def test_factor_kernels_balance_a_skewed_pair_into_conv_kernels_in_their_dtype():
    a, b = factor_matrix(np.random.default_rng(4).normal(size=(36, 6)), 3)
    kernel_a, kernel_b = factor_kernels(a * 1e-3, b * 1e3, (3, 3, 4, 6), np.float32)
    assert kernel_a.shape == (3, 3, 4, 3) and kernel_b.shape == (1, 1, 3, 6)
    assert kernel_a.dtype == kernel_b.dtype == np.float32
    norm_a, norm_b = _component_norms(kernel_a, kernel_b)
    np.testing.assert_allclose(norm_a, norm_b, rtol=1e-5)
    product = kernel_a.reshape(-1, 3) @ kernel_b.reshape(3, 6)
    np.testing.assert_allclose(product, a @ b, atol=1e-5 * np.abs(a @ b).max())


def test_a_zero_component_is_left_alone():
    a, b = np.array([[1.0, 0.0], [2.0, 0.0]]), np.array([[4.0, 0.0], [3.0, 5.0]])
    balanced_a, balanced_b = balance_factors(a, b)
    np.testing.assert_allclose(balanced_a @ balanced_b, a @ b)
    np.testing.assert_array_equal(balanced_b[1], b[1])
