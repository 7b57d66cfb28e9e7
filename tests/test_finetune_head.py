"""The fine-tuning loss follows the head: a softmax output is read as probabilities, anything
else as logits; `FitConfig.from_logits` (CLI --from-logits/--no-from-logits) overrides."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from harness.models import build_nested_model, build_raw_ops_model, sample_inputs
from keras import layers

from lowrank_edge.data.dataset import Dataset
from lowrank_edge.model.head import output_activation, outputs_probabilities
from lowrank_edge.model.resnet import build_mini_resnet
from lowrank_edge.model.train import FitConfig, fit
from lowrank_edge.pipeline.run import CompressOptions, compress_and_finetune


def _functional(head):
    inputs = keras.Input((4,))
    return keras.Model(inputs, head(layers.Dense(3, name="dense")(inputs)))


@pytest.mark.parametrize(
    ("model", "activation"),
    [
        (lambda: _functional(lambda x: x), "linear"),
        (lambda: _functional(keras.ops.softmax), "softmax"),  # a raw op
        (lambda: _functional(layers.Softmax()), "softmax"),
        (
            lambda: _functional(lambda x: layers.Flatten()(layers.Activation("softmax")(x))),
            "softmax",
        ),  # fmt: skip
        (lambda: _functional(lambda x: layers.Dropout(0.1)(layers.Activation("relu")(x))), "relu"),
        (
            lambda: keras.Sequential([keras.Input((4,)), layers.Dense(3, activation="softmax")]),
            "softmax",
        ),  # fmt: skip
        (build_nested_model, "linear"),  # the head is a nested Sequential ending in logits
        (build_raw_ops_model, "softmax"),
        (build_mini_resnet, "linear"),
    ],
)
def test_output_activation(model, activation):
    assert output_activation(model()) == activation


def test_keras_applications_heads():
    for build in (keras.applications.MobileNetV2, keras.applications.MobileNetV3Small):
        kwargs = {"input_shape": (32, 32, 3), "weights": None, "classes": 3}
        assert outputs_probabilities(build(**kwargs))  # MobileNetV3: Flatten -> Activation
        assert not outputs_probabilities(build(**kwargs, classifier_activation=None))


def _dataset(model, n: int = 64) -> Dataset:
    x = sample_inputs(model, n, seed=3)
    y = np.arange(n) % 5
    return Dataset("tiny", x, y, x[:16], y[:16], x[:16], y[:16], 5, tuple("abcde"))


def _first_step_loss(model, data: Dataset, from_logits: bool | None):
    """The loss Keras reports for one full batch at a learning rate too small to move it."""
    config = FitConfig(epochs=1, batch_size=len(data.x_train), learning_rate=1e-9,
                       cosine_decay=False, verbose=0, from_logits=from_logits)  # fmt: skip
    result = fit(model, data, config)
    return result.history["loss"][0], result


def _confident_softmax_model() -> keras.Model:
    """A softmax head sure of itself (large weights), so the two loss readings differ, with a
    Flatten after the softmax: Keras' TF backend then has no logits to fall back on (it uses
    them silently, whatever `from_logits` says, when the softmax is the very last op)."""
    inputs = keras.Input((8, 8, 3))
    x = layers.GlobalAveragePooling2D()(inputs * 2.0 - 1.0)
    init = keras.initializers.RandomNormal(stddev=20.0, seed=0)
    x = layers.Dense(5, activation="softmax", kernel_initializer=init)(x)
    return keras.Model(inputs, layers.Flatten()(x))


def test_softmax_head_fine_tunes_on_the_plain_cross_entropy():
    model = _confident_softmax_model()
    data = _dataset(model)
    probabilities = np.asarray(model(data.x_train, training=False), dtype=np.float64)
    cross_entropy = -np.mean(np.log(probabilities[np.arange(len(data.y_train)), data.y_train]))
    shifted = probabilities - probabilities.max(axis=1, keepdims=True)  # probabilities as logits
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    wrong = -np.mean(log_softmax[np.arange(len(data.y_train)), data.y_train])
    assert abs(cross_entropy - wrong) > 0.2  # the two readings differ clearly on this model

    loss, result = _first_step_loss(model, data, from_logits=None)
    assert result.from_logits is False and result.to_dict()["from_logits"] is False
    assert loss == pytest.approx(cross_entropy, rel=1e-3)

    loss, result = _first_step_loss(model, data, from_logits=True)  # the override is obeyed
    assert result.from_logits is True
    assert loss == pytest.approx(wrong, rel=1e-3)


def test_compress_records_the_loss_reading_in_the_sidecar():
    model = build_raw_ops_model()
    data = _dataset(model)
    finetune = FitConfig(epochs=1, batch_size=32, verbose=0)
    result = compress_and_finetune(
        model, CompressOptions(fraction=0.5, factoriser="svd"), data, finetune, log=lambda m: None
    )
    assert result.compression["finetune"]["from_logits"] is False
    assert result.compression["finetune"]["loss"] == "sparse_categorical_crossentropy"
    assert "history" not in result.compression["finetune"]
