"""The fine-tuning recipe: distillation from the original model, warm-up, optimizer, frozen
BatchNorm. Oracles are numpy written out here and plain cross-entropy training."""

from __future__ import annotations

import math
from dataclasses import replace

import keras
import numpy as np
import pytest
from harness.data import make_pattern_dataset
from keras import layers

from lowrank_edge.compress.rebuild import rebuild_model
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.model.distill import distillation_loss
from lowrank_edge.model.recipe import batchnorm_layers, learning_rate, warmup_steps
from lowrank_edge.model.saving import load_model, save_model
from lowrank_edge.model.train import FitConfig, compile_for_training, fit
from lowrank_edge.pipeline.run import CompressOptions, compress_and_finetune

QUIET = dict(batch_size=16, verbose=0, patience=None)


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _hand_loss(labels, student, teacher, t, alpha, weights):
    """The loss written out in numpy from logits: alpha T^2 KL(p_t || p_s) + (1 - alpha) CE."""
    p_t, p_s = _softmax(teacher / t), _softmax(student / t)
    kl = np.sum(p_t * (np.log(p_t) - np.log(p_s)), axis=-1)
    ce = -np.log(_softmax(student)[np.arange(len(labels)), labels])
    return float(np.mean(weights * (alpha * t * t * kl + (1 - alpha) * ce)))


@pytest.mark.parametrize("head", ["logits", "softmax"])
def test_distillation_loss_is_the_hand_computed_value(head):
    rng = np.random.default_rng(0)
    student, teacher = rng.normal(0, 2, (6, 5)), rng.normal(0, 2, (6, 5))
    labels, weights = rng.integers(0, 5, 6), rng.uniform(0.5, 2, 6)
    want = _hand_loss(labels, student, teacher, 4.0, 0.9, weights)
    given = (student, teacher) if head == "logits" else (_softmax(student), _softmax(teacher))
    got = distillation_loss(
        labels,
        *(np.float32(g) for g in given),
        temperature=4.0,
        alpha=0.9,
        from_logits=head == "logits",
        sample_weight=np.float32(weights),
    )
    # float32 throughout; a softmax head gives its logits back up to a per-row shift
    assert float(got) == pytest.approx(want, rel=1e-5)


def _conv_net(seed: int = 0, softmax: bool = False) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((28, 28, 1))
    x = layers.Conv2D(4, 3, strides=2, name="conv")(inputs)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.GlobalAveragePooling2D()(layers.ReLU()(x))
    outputs = layers.Dense(5, activation="softmax" if softmax else None, name="head")(x)
    return keras.Model(inputs, outputs)


def test_distilled_fit_keeps_the_fit_features_and_saves_the_plain_model(tmp_path):
    data = make_pattern_dataset(n_train=64, n_val=16, n_test=16)
    teacher = _conv_net(softmax=True)
    teacher_weights = teacher.get_weights()
    student = rebuild_model(teacher, {})
    config = FitConfig(
        epochs=2,
        batch_size=16,
        verbose=0,
        patience=1,
        augment=True,
        balance_classes=True,
        track_test=True,
        keep_start=True,
        distill=True,
    )
    result = fit(student, data, config, teacher=teacher)
    assert {"accuracy", "val_accuracy", "test_accuracy", "loss"} <= set(result.history)
    record = result.to_dict()
    assert record["loss"] == "distillation" and record["from_logits"] is False
    assert record["distill"] == {"temperature": 4.0, "alpha": 0.9}
    for before, after in zip(teacher_weights, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)  # the teacher is never trained
    path = save_model(student, tmp_path / "student.keras")
    loaded = load_model(path)  # safe_mode: only stock classes in the file
    assert type(loaded) is type(student)  # a stock Functional, not the fit-time wrapper
    np.testing.assert_allclose(
        loaded.predict(data.x_test, verbose=0), student.predict(data.x_test, verbose=0), atol=1e-6
    )


def test_distillation_at_alpha_zero_trains_like_plain_cross_entropy():
    data = make_pattern_dataset(n_train=48, n_val=16, n_test=16)
    teacher = _conv_net(seed=1)
    plain, distilled = _conv_net(seed=2), _conv_net(seed=2)
    # no augmentation: its parallel map draws shifts in no fixed order, so even two plain runs
    # differ with it
    fit(plain, data, FitConfig(epochs=1, **QUIET))
    config = FitConfig(epochs=1, distill=True, distill_alpha=0.0, **QUIET)
    fit(distilled, data, config, teacher=teacher)
    start = _conv_net(seed=2).get_weights()
    moved = max(np.max(np.abs(a - s)) for a, s in zip(plain.get_weights(), start, strict=True))
    assert moved > 1e-3  # training did move the weights
    for a, b in zip(plain.get_weights(), distilled.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_distillation_without_a_teacher_is_refused():
    data = make_pattern_dataset(n_train=16, n_val=8, n_test=8)
    with pytest.raises(LowrankEdgeError, match="needs the original model as the teacher"):
        fit(_conv_net(), data, FitConfig(epochs=1, distill=True, **QUIET))


def test_warmup_then_cosine_rates():
    schedule = learning_rate(1e-3, total_steps=100, warmup=10)
    rates = {s: float(schedule(s)) for s in (0, 5, 10, 55, 100)}
    cosine_mid = (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 45 / 90))) * 1e-3
    want = {0: 0.0, 5: 5e-4, 10: 1e-3, 55: cosine_mid, 100: 1e-5}
    for step, rate in want.items():
        assert rates[step] == pytest.approx(rate, rel=1e-5, abs=1e-9), step
    held = learning_rate(1e-3, total_steps=100, warmup=10, cosine=False)
    assert float(held(5)) == pytest.approx(5e-4) and float(held(90)) == pytest.approx(1e-3)
    today = learning_rate(1e-3, total_steps=100)  # no warm-up: the schedule as before
    assert float(today(0)) == pytest.approx(1e-3) and float(today(100)) == pytest.approx(1e-5)


def test_warmup_steps_from_a_fraction_or_epochs():
    assert warmup_steps(0.1, steps_per_epoch=10, epochs=2) == 2
    assert warmup_steps(1, steps_per_epoch=10, epochs=2) == 10
    assert warmup_steps(0, steps_per_epoch=10, epochs=2) == 0
    with pytest.raises(LowrankEdgeError, match="takes the whole run of 2 epochs"):
        warmup_steps(2, steps_per_epoch=10, epochs=2)


def test_sgd_option_selects_nesterov_sgd_and_adam_stays_the_default():
    model = _conv_net()
    compile_for_training(model, FitConfig(optimizer="sgd"), steps_per_epoch=4)
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert model.optimizer.momentum == pytest.approx(0.9) and model.optimizer.nesterov
    compile_for_training(model, FitConfig(), steps_per_epoch=4)
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    with pytest.raises(LowrankEdgeError, match="optimizer must be one of adam, sgd"):
        FitConfig(optimizer="rmsprop").check()


def _bn_state(model):
    return [w.copy() for w in model.get_layer("bn").get_weights()]


@pytest.mark.parametrize("freeze", [True, False])
def test_freeze_bn_keeps_batchnorm_fixed_and_restores_it(freeze):
    data = make_pattern_dataset(n_train=48, n_val=16, n_test=16)
    model = _conv_net()
    before, conv_before = _bn_state(model), model.get_layer("conv").get_weights()[0].copy()
    result = fit(model, data, FitConfig(epochs=1, freeze_bn=freeze, **QUIET))
    unchanged = [np.array_equal(a, b) for a, b in zip(before, _bn_state(model), strict=True)]
    assert unchanged == [freeze] * 4  # gamma, beta, moving mean, moving variance
    assert not np.array_equal(conv_before, model.get_layer("conv").get_weights()[0])
    assert model.get_layer("bn").trainable  # the flag is given back
    assert result.to_dict()["freeze_bn"] is freeze


def test_freeze_bn_without_batchnorm_is_refused():
    model = keras.Sequential([keras.Input((28, 28, 1)), layers.Flatten(), layers.Dense(5)])
    assert batchnorm_layers(model) == []
    data = make_pattern_dataset(n_train=16, n_val=8, n_test=8)
    with pytest.raises(LowrankEdgeError, match="no BatchNormalization layer"):
        fit(model, data, FitConfig(epochs=1, freeze_bn=True, **QUIET))


def test_compress_and_finetune_distils_from_the_original_and_records_the_recipe():
    model = _conv_net(softmax=True)
    data = make_pattern_dataset(n_train=48, n_val=16, n_test=16)
    finetune = FitConfig(
        epochs=1, distill=True, distill_temperature=2.0, warmup=0.5, optimizer="sgd", **QUIET
    )
    result = compress_and_finetune(
        model, CompressOptions(fraction=0.5, factoriser="svd"), data, finetune, log=lambda m: None
    )
    record = result.compression["finetune"]
    assert record["loss"] == "distillation"
    assert record["distill"] == {"temperature": 2.0, "alpha": 0.9}
    assert (record["warmup"], record["optimizer"], record["freeze_bn"]) == (0.5, "sgd", False)


def _tiny_resnet():
    from lowrank_edge.model.resnet import ResNetConfig, build_mini_resnet

    keras.utils.set_random_seed(0)
    return build_mini_resnet(ResNetConfig(num_classes=5, widths=(4, 8), head_units=8))


def test_block_output_matching_adds_the_relative_squared_error_of_each_block():
    from lowrank_edge.model.distill import Distiller

    teacher = _tiny_resnet()
    student = rebuild_model(teacher, {})
    rng = np.random.default_rng(1)
    student.set_weights([w + rng.normal(0, 0.05, w.shape).astype(w.dtype)
                         for w in student.get_weights()])  # fmt: skip
    data = make_pattern_dataset(n_train=16, n_val=8, n_test=8)
    x, y = data.x_train, data.y_train
    plain = Distiller(student, teacher, 4.0, 0.9, from_logits=True)
    matched = Distiller(student, teacher, 4.0, 0.9, from_logits=True, features=["*_out"])
    assert matched.features == ["s1b1_out", "s2b1_out"]
    want = float(plain.compute_loss(x, y, plain(x, training=False)))
    for name in matched.features:  # written out with separate models, in numpy
        s = keras.Model(student.input, student.get_layer(name).output).predict(x, verbose=0)
        t = keras.Model(teacher.input, teacher.get_layer(name).output).predict(x, verbose=0)
        want += np.mean((s - t) ** 2) / np.mean(t**2) / len(matched.features)
    got = float(matched.compute_loss(x, y, matched(x, training=False)))
    assert got == pytest.approx(want, rel=1e-4)  # float32 sums over different batchings
    # a copy of the teacher adds nothing
    same = Distiller(rebuild_model(teacher, {}), teacher, 4.0, 0.9, True, features=["*_out"])
    base = Distiller(rebuild_model(teacher, {}), teacher, 4.0, 0.9, True)
    assert float(same.compute_loss(x, y, same(x))) == pytest.approx(
        float(base.compute_loss(x, y, base(x))), abs=1e-6
    )


def test_block_output_matching_trains_and_is_recorded():
    teacher = _tiny_resnet()
    student = rebuild_model(teacher, {})
    data = make_pattern_dataset(n_train=32, n_val=16, n_test=16)
    config = FitConfig(epochs=1, distill=True, distill_features=("*_add",), **QUIET)
    result = fit(student, data, config, teacher=teacher)
    assert 0 <= result.history["accuracy"][0] <= 1
    assert result.to_dict()["distill"]["features"] == ["*_add"]


@pytest.mark.parametrize(
    "config, message",
    [
        (FitConfig(distill=True, distill_features=("nothing*",)), "matches no layer"),
        (FitConfig(distill=False, distill_features=("*_out",)), "applies with --distill"),
    ],
)
def test_block_output_matching_refusals(config, message):
    teacher = _tiny_resnet()
    data = make_pattern_dataset(n_train=16, n_val=8, n_test=8)
    with pytest.raises(LowrankEdgeError, match=message):
        fit(rebuild_model(teacher, {}), data, replace(config, epochs=1, **QUIET), teacher)
