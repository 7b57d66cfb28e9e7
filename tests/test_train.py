"""Training helpers: class weights for skewed training splits, readable progress logs."""

import io
import sys

import numpy as np
import pytest

from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.model.train import FitConfig, balanced_class_weights, fit, progress_mode


def test_balanced_weights_equalise_class_totals():
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    weights = balanced_class_weights(labels, num_classes=4)
    totals = [weights[c] * np.sum(labels == c) for c in range(3)]
    np.testing.assert_allclose(totals, [100 / 4] * 3)  # every present class weighs n / k
    assert weights[3] == 0.0  # absent class
    assert weights[2] == pytest.approx(100 / (4 * 10))


def _tiny_fit(verbose, epochs=3):
    import keras
    from harness.data import make_pattern_dataset

    data = make_pattern_dataset(n_train=32, n_val=8, n_test=8)
    model = keras.Sequential(
        [
            keras.Input(data.x_train.shape[1:]),
            keras.layers.Flatten(),
            keras.layers.Dense(data.num_classes),
        ]
    )
    config = FitConfig(epochs=epochs, batch_size=8, verbose=verbose, patience=None)
    return fit(model, data, config)


def test_fit_logs_one_plain_line_per_epoch_when_stdout_is_not_a_terminal(capsys):
    result = _tiny_fit(verbose=None)
    out = capsys.readouterr().out
    assert "\r" not in out and "\b" not in out  # no progress-bar frames
    lines = out.splitlines()
    assert len(lines) == result.epochs_run == 3
    for epoch, line in enumerate(lines, start=1):
        assert line.startswith(f"Epoch {epoch}/3 - ")
        assert "accuracy: " in line and "val_accuracy: " in line


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_fit_keeps_the_progress_bar_on_a_terminal(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    _tiny_fit(verbose=None, epochs=1)
    assert "\r" in terminal.getvalue() or "\b" in terminal.getvalue()  # bar frames redrawn


def test_progress_mode_follows_the_stream_unless_given():
    assert progress_mode(None, _Terminal()) == 1
    assert progress_mode(None, io.StringIO()) == 2
    closed = io.StringIO()
    closed.close()
    assert progress_mode(None, closed) == 2
    assert progress_mode(0, _Terminal()) == 0 and progress_mode(2, _Terminal()) == 2
    with pytest.raises(LowrankEdgeError, match="verbose must be 0, 1, 2 or None, got 3"):
        progress_mode(3)


def test_fine_tuning_that_only_hurts_hands_back_the_starting_weights():
    import keras
    from harness.data import make_pattern_dataset

    from lowrank_edge.model.train import accuracy

    data = make_pattern_dataset(num_classes=3, n_train=96, n_val=32, n_test=8)
    model = keras.Sequential(
        [
            keras.Input(data.x_train.shape[1:]),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3),
        ]
    )
    fit(model, data, FitConfig(epochs=6, batch_size=16, learning_rate=1e-2, verbose=0))
    start = [w.copy() for w in model.get_weights()]
    start_val = accuracy(model, data.x_val, data.y_val)
    assert start_val > 0.5
    # a learning rate this large wrecks the model on every epoch
    wrecked = FitConfig(epochs=2, batch_size=16, learning_rate=50.0, verbose=0, keep_start=True)
    result = fit(model, data, wrecked)
    assert max(result.history["val_accuracy"]) < start_val
    assert result.best_epoch == 0
    for kept, original in zip(model.get_weights(), start, strict=True):
        np.testing.assert_array_equal(kept, original)


def test_the_same_seed_gives_the_same_weights_with_augmentation():
    """Random shifts are drawn in a fixed order, so a seeded fit repeats exactly (a parallel
    map drew them in no fixed order: weights differed by up to 7e-3 between identical runs)."""
    import keras
    from harness.data import make_pattern_dataset

    data = make_pattern_dataset(num_classes=3, n_train=96, n_val=16, n_test=8)

    def trained() -> list[np.ndarray]:
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input(data.x_train.shape[1:]),
                keras.layers.Conv2D(4, 3, activation="relu"),
                keras.layers.GlobalAveragePooling2D(),
                keras.layers.Dense(3),
            ]
        )
        config = FitConfig(epochs=2, batch_size=8, augment=True, verbose=0, seed=3)
        fit(model, data, config)
        return model.get_weights()

    for first, second in zip(trained(), trained(), strict=True):
        np.testing.assert_array_equal(first, second)
