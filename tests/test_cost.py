"""Cost model: params and MACs against hand calculations, nested/shared walking, JSON."""

import json

import keras
import pytest
from keras import layers

from lowrank_edge.compress import CompressionError
from lowrank_edge.compress.cost import model_cost


def _single_layer_cost(layer, input_shape):
    inputs = keras.Input(input_shape)
    model = keras.Model(inputs, layer(inputs))
    cost = model_cost(model)
    (entry,) = cost.layers
    return entry


@pytest.mark.parametrize(
    ("layer", "input_shape", "macs", "params"),
    [
        # out 4x4 (valid, stride 2 on 9x9) x 4 filters, each output reads a 3x3x2 window
        (layers.Conv2D(4, 3, strides=2), (9, 9, 2), 4 * 4 * 4 * (3 * 3 * 2), 3 * 3 * 2 * 4 + 4),
        # same padding, stride 2: out ceil(9/2)=5
        (layers.Conv2D(4, 3, strides=2, padding="same"), (9, 9, 2), 5 * 5 * 4 * 18, 76),
        # dilation 2 on 7x7 valid: effective window 5, out 3x3
        (layers.Conv2D(4, 3, dilation_rate=2), (7, 7, 2), 3 * 3 * 4 * 18, 76),
        # groups 2: each output reads 3x3x(4/2) inputs
        (
            layers.Conv2D(6, 3, groups=2, padding="same", use_bias=False),
            (5, 5, 4),
            5 * 5 * 6 * (3 * 3 * 2),
            3 * 3 * 2 * 6,
        ),
        # depthwise, multiplier 2: out 6x6x4, each reads a 3x3 window of one channel
        (
            layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same"),
            (6, 6, 2),
            6 * 6 * 4 * 9,
            3 * 3 * 2 * 2 + 4,
        ),
        # separable: depthwise 6x6x2 x 9 + pointwise 6x6 x 2 x 5
        (
            layers.SeparableConv2D(5, 3, padding="same"),
            (6, 6, 2),
            6 * 6 * 2 * 9 + 6 * 6 * 2 * 5,
            3 * 3 * 2 + 2 * 5 + 5,
        ),
        # transpose, stride 2: every input element scatters 3x3x3 products
        (layers.Conv2DTranspose(3, 3, strides=2), (4, 4, 2), 4 * 4 * 2 * 9 * 3, 3 * 3 * 3 * 2 + 3),
        (layers.Dense(3), (5,), 3 * 5, 5 * 3 + 3),
        # Dense on a rank-3 input: applied at each of the 4 positions
        (layers.Dense(3), (4, 5), 4 * 3 * 5, 18),
        (layers.MaxPooling2D(), (4, 4, 2), 0, 0),
    ],
)
def test_layer_macs_and_params_match_hand_calculation(layer, input_shape, macs, params):
    entry = _single_layer_cost(layer, input_shape)
    assert (entry.macs, entry.params) == (macs, params)
    assert entry.class_name == type(layer).__name__


def test_model_totals_count_batchnorm_stats_as_non_trainable_and_flops_double_macs():
    inputs = keras.Input((4, 4, 2))
    x = layers.Conv2D(3, 1, use_bias=False, name="conv")(inputs)
    x = layers.BatchNormalization(name="bn")(x)
    model = keras.Model(inputs, layers.ReLU(name="relu")(x))
    cost = model_cost(model)
    assert cost.params == 2 * 3 + 4 * 3
    assert cost.trainable_params == 2 * 3 + 2 * 3  # gamma, beta; moving stats excluded
    assert cost.macs == 4 * 4 * 3 * 2
    assert cost.flops == 2 * cost.macs
    assert [entry.name for entry in cost.layers] == ["conv", "bn", "relu"]


def test_shared_layer_counts_params_once_and_macs_per_call():
    inputs = keras.Input((6,))
    dense = layers.Dense(6, name="shared")
    model = keras.Model(inputs, dense(dense(inputs)))
    cost = model_cost(model)
    (entry,) = cost.layers
    assert entry.params == 6 * 6 + 6
    assert entry.macs == 2 * 6 * 6
    assert cost.params == entry.params


def test_nested_models_are_walked_with_paths_and_per_call():
    inner_in = keras.Input((4,))
    inner = keras.Model(inner_in, layers.Dense(4, name="fc")(inner_in), name="inner")
    head = keras.Sequential([keras.Input((4,)), layers.Dense(2, name="out")], name="head")
    inputs = keras.Input((4,))
    model = keras.Model(inputs, head(inner(inner(inputs))))
    cost = model_cost(model)
    by_name = {entry.name: entry for entry in cost.layers}
    assert set(by_name) == {"inner/fc", "head/out"}
    assert by_name["inner/fc"].macs == 2 * 4 * 4  # the sub-model is called twice
    assert by_name["head/out"].macs == 4 * 2
    assert cost.params == (4 * 4 + 4) + (4 * 2 + 2)


def test_to_dict_is_json_ready():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, layers.Dense(2, name="fc")(inputs))
    data = model_cost(model).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["flops"] == 2 * data["macs"] == 12
    assert data["layers"] == [{"name": "fc", "class_name": "Dense", "params": 8, "macs": 6}]


def test_unknown_spatial_shape_is_a_clear_error():
    inputs = keras.Input((None, None, 2))
    model = keras.Model(inputs, layers.Conv2D(2, 3, name="conv")(inputs))
    with pytest.raises(CompressionError, match=r"layer 'conv' .*unknown dimensions"):
        model_cost(model)


def test_subclassed_and_unbuilt_models_are_rejected():
    class Tiny(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(CompressionError, match="Sequential or Functional.*got Tiny"):
        model_cost(Tiny())
    with pytest.raises(CompressionError, match="'unbuilt' is not built"):
        model_cost(keras.Sequential([layers.Dense(2)], name="unbuilt"))
