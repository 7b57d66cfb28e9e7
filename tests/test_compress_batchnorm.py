"""BatchNorm re-estimation: only the moving statistics change, and they become the statistics
of each BatchNorm's inputs in the re-estimated model (read through a sub-model, not the code)."""

import keras
import numpy as np
from harness.models import build_nested_model, sample_inputs

from lowrank_edge.compress.batchnorm_stats import recalibrate_batchnorm


def two_batchnorm_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", name="c1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(5, 3, padding="same", name="c2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    outputs = keras.layers.Dense(3, name="out")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    for name in ("bn1", "bn2"):  # stale statistics, far from the data's
        layer = model.get_layer(name)
        layer.moving_mean.assign(rng.normal(3, 1, layer.moving_mean.shape))
        layer.moving_variance.assign(rng.uniform(5, 9, layer.moving_variance.shape))
    return model


def test_only_the_moving_statistics_change_and_they_match_the_inputs():
    model = two_batchnorm_model()
    x = sample_inputs(model, n=10, seed=1)
    before = {w.path: w.numpy().copy() for w in model.weights}
    assert recalibrate_batchnorm(model, x, batch_size=4) == ["bn1", "bn2"]
    for weight in model.weights:
        moving = "moving_" in weight.path
        unchanged = np.array_equal(weight.numpy(), before[weight.path])
        assert unchanged != moving, weight.path
    for name in ("bn1", "bn2"):
        layer = model.get_layer(name)
        inputs = np.asarray(keras.Model(model.inputs, layer.input)(x), dtype=np.float64)
        np.testing.assert_allclose(
            layer.moving_mean.numpy(), inputs.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5
        )
        np.testing.assert_allclose(
            layer.moving_variance.numpy(), inputs.var(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5
        )


def test_graph_order_matters_the_second_batchnorm_sees_the_first_one_updated():
    model = two_batchnorm_model()
    x = sample_inputs(model, n=10, seed=1)
    recalibrate_batchnorm(model, x)
    # normalised by re-estimated bn1, bn2's inputs are what its new statistics describe
    layer = model.get_layer("bn2")
    inputs = np.asarray(keras.Model(model.inputs, layer.input)(x), dtype=np.float64)
    normalised = (inputs - layer.moving_mean.numpy()) / np.sqrt(layer.moving_variance.numpy())
    np.testing.assert_allclose(normalised.mean(axis=(0, 1, 2)), 0, atol=1e-3)


def test_batchnorm_inside_a_nested_model():
    model = build_nested_model(rank=3)
    x = sample_inputs(model, n=6)
    assert recalibrate_batchnorm(model, x) == ["block/bn_a"]
    block = model.get_layer("block")
    layer = block.get_layer("bn_a")
    stem = np.asarray(keras.Model(model.inputs, model.get_layer("stem").output)(x))
    inputs = np.asarray(keras.Model(block.inputs, layer.input)(stem), dtype=np.float64)
    np.testing.assert_allclose(
        layer.moving_mean.numpy(), inputs.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5
    )


def test_a_model_without_batchnorm_is_left_alone():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    assert recalibrate_batchnorm(model, np.ones((3, 4), "float32")) == []
