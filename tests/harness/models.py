"""Tiny Keras test models, some with exactly rank-k kernels, and output comparisons.

Builders (all Functional unless named otherwise; small inputs so tests stay fast):
- `build_residual_model(rank)`: conv stem + BatchNorm, a residual block with an Add, a
  strided conv, pooling and two Dense layers; every Conv2D/Dense kernel has rank `rank`.
- `build_sequential_model(rank)`: a keras.Sequential conv/dense stack, rank-`rank` kernels.
- `build_nested_model(rank)`: a Functional sub-model ("block") and a Sequential sub-model
  ("head") used as layers inside an outer Functional model.
- `build_shared_layer_model(rank)`: a Conv2D ("shared_conv") called twice in a row and a
  Dense ("shared_dense") called on two branches.
- `build_branch_model(rank)`: parallel conv branches joined by Concatenate.
- `build_unsupported_model()`: DepthwiseConv2D, grouped Conv2D, SeparableConv2D,
  Conv2DTranspose and Conv1D next to a plain Conv2D and Dense (random weights).
- `build_raw_ops_model(input_shape, num_classes)`: a model as people write it, with raw
  `keras.ops` nodes (a `preprocess_input`-style `x / 127.5 - 1`, hard-swish
  `x * ReLU(6.)(x + 3.) * (1 / 6)`, a scale by a constant), Rescaling, ZeroPadding2D,
  DepthwiseConv2D, Reshape and a softmax head (random weights).
The rank-k builders keep every kernel well below break-even (r*(m+n) < m*n) for rank <= 2.

Helpers: `low_rank_kernel`, `set_low_rank_kernels`, `leaf_layers`, `sample_inputs`,
`model_outputs`, `assert_same_outputs(a, b, x, atol)`, `run_serialization_test(model, tmp_path)`.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import layers

INPUT_SHAPE = (8, 8, 3)
NUM_CLASSES = 5


def low_rank_kernel(shape: tuple[int, ...], rank: int, rng: np.random.Generator) -> np.ndarray:
    """A float32 kernel of `shape` whose (prod(shape[:-1]), shape[-1]) matrix has rank `rank`."""
    m, n = int(np.prod(shape[:-1])), shape[-1]
    rank = min(rank, m, n)
    a = rng.standard_normal((m, rank))
    b = rng.standard_normal((rank, n))
    matrix = (a @ b) * np.sqrt(2.0 / (m * rank))  # He-like scale: activations stay O(1)
    return matrix.reshape(shape).astype(np.float32)


def leaf_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every non-model layer of `model`, nested models expanded, each layer once."""
    found: dict[int, keras.layers.Layer] = {}
    for layer in model.layers:
        inner = leaf_layers(layer) if isinstance(layer, keras.Model) else [layer]
        for leaf in inner:
            found.setdefault(id(leaf), leaf)
    return list(found.values())


def set_low_rank_kernels(model: keras.Model, rank: int, seed: int = 0) -> keras.Model:
    """Give every stock Conv2D/Dense kernel rank `rank`, random biases and BatchNorm stats."""
    rng = np.random.default_rng(seed)
    for layer in leaf_layers(model):
        if type(layer) in (layers.Conv2D, layers.Dense):
            weights = [low_rank_kernel(tuple(layer.kernel.shape), rank, rng)]
            if layer.use_bias:
                weights.append(rng.normal(0, 0.1, layer.bias.shape).astype(np.float32))
            layer.set_weights(weights)
        elif isinstance(layer, layers.BatchNormalization):
            size = layer.gamma.shape
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, size).astype(np.float32),  # gamma
                    rng.normal(0, 0.1, size).astype(np.float32),  # beta
                    rng.normal(0, 0.1, size).astype(np.float32),  # moving mean
                    rng.uniform(0.5, 1.5, size).astype(np.float32),  # moving variance
                ]
            )
    return model


def build_residual_model(rank: int = 2, seed: int = 0) -> keras.Model:
    """Residual Functional model (BatchNorm, Add, strided conv, Dense head), rank-k kernels."""
    inputs = keras.Input(INPUT_SHAPE, name="image")
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    y = layers.Conv2D(8, 3, padding="same", activation="relu", name="res_a")(x)
    y = layers.Conv2D(8, 3, padding="same", name="res_b")(y)
    x = layers.ReLU(name="res_out")(layers.Add(name="res_add")([x, y]))
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="down")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dense(16, activation="relu", name="fc")(x)
    outputs = layers.Dense(NUM_CLASSES, name="logits")(x)
    model = keras.Model(inputs, outputs, name="residual")
    return set_low_rank_kernels(model, rank, seed)


def build_sequential_model(rank: int = 2, seed: int = 0) -> keras.Sequential:
    """A keras.Sequential conv/pool/dense stack with rank-k kernels."""
    model = keras.Sequential(
        [
            keras.Input(INPUT_SHAPE, name="image"),
            layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1"),
            layers.MaxPooling2D(name="pool1"),
            layers.Conv2D(16, 3, padding="valid", dilation_rate=1, name="conv2"),
            layers.Flatten(name="flat"),
            layers.Dense(16, activation="tanh", name="fc"),
            layers.Dense(NUM_CLASSES, name="logits"),
        ],
        name="sequential_net",
    )
    return set_low_rank_kernels(model, rank, seed)


def build_nested_model(rank: int = 2, seed: int = 0) -> keras.Model:
    """Outer Functional model using a Functional sub-model "block" and a Sequential "head"."""
    block_in = keras.Input((8, 8, 8), name="block_in")
    b = layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv_a")(block_in)
    b = layers.BatchNormalization(name="bn_a")(b)
    b = layers.ReLU(name="relu_a")(b)
    b = layers.Conv2D(8, 3, padding="same", name="conv_b")(b)
    block = keras.Model(block_in, layers.Add(name="add")([block_in, b]), name="block")
    head = keras.Sequential(
        [
            keras.Input((8, 8, 8), name="head_in"),
            layers.GlobalAveragePooling2D(name="pool"),
            layers.Dense(16, activation="relu", name="fc"),
            layers.Dense(NUM_CLASSES, name="logits"),
        ],
        name="head",
    )
    inputs = keras.Input(INPUT_SHAPE, name="image")
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inputs)
    model = keras.Model(inputs, head(block(x)), name="nested")
    return set_low_rank_kernels(model, rank, seed)


def build_shared_layer_model(rank: int = 2, seed: int = 0) -> keras.Model:
    """A Conv2D called twice in a row and a Dense called on two pooled branches."""
    inputs = keras.Input(INPUT_SHAPE, name="image")
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inputs)
    shared_conv = layers.Conv2D(8, 3, padding="same", activation="relu", name="shared_conv")
    x = shared_conv(shared_conv(x))
    shared_dense = layers.Dense(16, activation="relu", name="shared_dense")
    avg = shared_dense(layers.GlobalAveragePooling2D(name="avg")(x))
    top = shared_dense(layers.GlobalMaxPooling2D(name="max")(x))
    x = layers.Add(name="merge")([avg, top])
    outputs = layers.Dense(NUM_CLASSES, name="logits")(x)
    model = keras.Model(inputs, outputs, name="shared")
    return set_low_rank_kernels(model, rank, seed)


def build_branch_model(rank: int = 2, seed: int = 0) -> keras.Model:
    """Parallel 3x3, dilated 3x3 and strided-pool branches joined by Concatenate."""
    inputs = keras.Input(INPUT_SHAPE, name="image")
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inputs)
    left = layers.Conv2D(8, 3, padding="same", name="left")(x)
    right = layers.Conv2D(8, 3, padding="same", dilation_rate=2, name="right_dilated")(x)
    x = layers.Concatenate(name="concat")([left, right])
    x = layers.Conv2D(16, 3, strides=2, padding="valid", activation="relu", name="down")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(NUM_CLASSES, name="logits")(x)
    model = keras.Model(inputs, outputs, name="branches")
    return set_low_rank_kernels(model, rank, seed)


def build_unsupported_model(seed: int = 0) -> keras.Model:
    """Layers the compressor must keep (named after their class) next to factorable ones."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(INPUT_SHAPE, name="image")
    x = layers.Conv2D(8, 3, padding="same", name="plain_conv")(inputs)
    x = layers.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    x = layers.Conv2D(8, 3, padding="same", groups=2, name="grouped")(x)
    x = layers.SeparableConv2D(8, 3, padding="same", name="separable")(x)
    x = layers.Conv2DTranspose(8, 3, strides=2, padding="same", name="transpose")(x)
    x = layers.Reshape((16 * 16, 8), name="to_seq")(x)
    x = layers.Conv1D(8, 3, padding="same", name="conv1d")(x)
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    outputs = layers.Dense(NUM_CLASSES, name="logits")(x)
    return keras.Model(inputs, outputs, name="unsupported")


def build_raw_ops_model(
    input_shape: tuple[int, int, int] = INPUT_SHAPE, num_classes: int = NUM_CLASSES, seed: int = 0
) -> keras.Model:
    """Raw-ops nodes, preprocessing layers and a softmax head (see the module docstring)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape, name="image")
    x = layers.Rescaling(255.0, name="to_bytes")(inputs)
    x = x / 127.5 - 1.0  # what keras.applications' preprocess_input does, as raw ops
    x = layers.ZeroPadding2D(1, name="pad")(x)
    x = layers.Conv2D(8, 3, name="stem")(x)
    x = x * layers.ReLU(6.0, name="hs_relu6")(x + 3.0) * (1.0 / 6.0)  # hard-swish
    x = layers.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    x = layers.Conv2D(16, 1, activation="relu", name="pointwise")(x)
    x = layers.GlobalAveragePooling2D(keepdims=True, name="pool")(x)
    x = layers.Reshape((16,), name="flatten")(x) * 0.5
    x = layers.Dense(16, activation="relu", name="fc")(x)
    peaked = keras.initializers.RandomNormal(stddev=2.0, seed=seed)  # not near-uniform outputs
    outputs = layers.Dense(
        num_classes, activation="softmax", kernel_initializer=peaked, name="probs"
    )(x)
    return keras.Model(inputs, outputs, name="raw_ops")


def sample_inputs(model: keras.Model, n: int = 4, seed: int = 0) -> np.ndarray:
    """Random float32 inputs in [0, 1) shaped like the model's (single) input."""
    shape = tuple(model.inputs[0].shape[1:])
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


def model_outputs(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """Inference-mode outputs as a numpy array."""
    return np.asarray(keras.ops.convert_to_numpy(model(x, training=False)))


def assert_same_outputs(a: keras.Model, b: keras.Model, x: np.ndarray, atol: float) -> None:
    """Assert two models give the same outputs on `x` within absolute tolerance `atol`."""
    out_a, out_b = model_outputs(a, x), model_outputs(b, x)
    assert out_a.shape == out_b.shape, f"output shapes differ: {out_a.shape} vs {out_b.shape}"
    np.testing.assert_allclose(out_b, out_a, rtol=0, atol=atol)


def run_serialization_test(
    model: keras.Model, tmp_path: Path, x: np.ndarray | None = None, atol: float = 0.0
) -> keras.Model:
    """Save `model` as .keras, reload with safe_mode=True, assert same outputs; return it."""
    path = Path(tmp_path) / f"{model.name}.keras"
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True, compile=False)
    assert_same_outputs(model, reloaded, sample_inputs(model) if x is None else x, atol)
    return reloaded
