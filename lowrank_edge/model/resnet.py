"""The reference model: a small ResNet for any image shape (28x28x1 by default) and class count.

Conv stem, residual stages (BatchNorm, 1x1 projection shortcuts where the shape
changes), global average pooling, an optional hidden Dense layer and a Dense head
that outputs logits. Only stock Keras layers, so models save with safe_mode=True.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import keras
from keras import layers

from lowrank_edge.data.dataset import Dataset

# Keras' default BatchNorm momentum (0.99) makes the moving statistics lag far
# behind the weights in a short run: validation accuracy after one epoch can read
# 30% while training accuracy is 98%. 0.9 tracks them within a few hundred steps.
BN_MOMENTUM = 0.9


@dataclass(frozen=True)
class ResNetConfig:
    """Width and depth of the mini-ResNet. Defaults are the reference model."""

    num_classes: int = 10
    widths: tuple[int, ...] = (16, 32, 64)
    blocks_per_stage: int = 1
    head_units: int = 128  # 0 for no hidden Dense layer
    input_shape: tuple[int, int, int] = (28, 28, 1)


def config_for_data(config: ResNetConfig, data: Dataset) -> ResNetConfig:
    """`config` sized for `data`: its image shape (H, W, C) and its class count."""
    image_shape = tuple(int(d) for d in data.x_train.shape[1:])
    return replace(config, num_classes=data.num_classes, input_shape=image_shape)


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, relu: bool = True):
    x = layers.Conv2D(
        filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    if relu:
        x = layers.ReLU(name=f"{name}_relu")(x)
    return x


def _residual_block(x, filters: int, stride: int, name: str):
    shortcut = x
    y = _conv_bn(x, filters, 3, stride, f"{name}_a")
    y = _conv_bn(y, filters, 3, 1, f"{name}_b", relu=False)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, 1, stride, f"{name}_proj", relu=False)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_out")(y)


def build_mini_resnet(config: ResNetConfig = ResNetConfig(), name: str = "mini_resnet"):
    """Build (not compile) the mini-ResNet described by `config`; outputs logits."""
    inputs = keras.Input(shape=config.input_shape, name="image")
    x = _conv_bn(inputs, config.widths[0], 3, 1, "stem")
    for stage, filters in enumerate(config.widths):
        for block in range(config.blocks_per_stage):
            stride = 2 if (stage > 0 and block == 0) else 1
            x = _residual_block(x, filters, stride, f"s{stage + 1}b{block + 1}")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if config.head_units:
        x = layers.Dense(config.head_units, activation="relu", name="fc")(x)
    outputs = layers.Dense(config.num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)
