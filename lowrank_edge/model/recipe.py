"""The fine-tuning recipe: distillation settings, learning-rate schedule, optimizer, BatchNorm.

Warm-up is linear from 0 to the peak rate, then cosine decay to 1% of it (or a constant peak
without cosine). SGD is Nesterov with momentum 0.9. Frozen BatchNorm layers run in inference
mode with their statistics fixed during the fit and get their trainable flags back after it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from lowrank_edge.errors import LowrankEdgeError

OPTIMIZERS = ("adam", "sgd")
SGD_MOMENTUM = 0.9
FINAL_RATE_FRACTION = 0.01  # cosine decay ends at 1% of the peak rate
DEFAULT_TEMPERATURE = 4.0  # distillation (see `model.distill`)
DEFAULT_ALPHA = 0.9
# The recipe's defaults per factoriser, as measured in bench/results/finetune-recipes-mnist:
# data-aware starts are already good, and distillation from the original (with a short
# warm-up) keeps them; plain SVD's collapsed starts keep the plain recipe (not re-measured).
DATA_AWARE_RECIPE = {"distill": True, "warmup": 0.1}
PLAIN_SVD_RECIPE = {"distill": False, "warmup": 0.0}


def recipe_defaults(factoriser: str) -> dict:
    """The recipe settings a user left out: distillation and warm-up for the data-aware
    (whitened) factoriser, neither for plain SVD."""
    return dict(DATA_AWARE_RECIPE if factoriser == "whitened" else PLAIN_SVD_RECIPE)


def check_distill_settings(temperature: float, alpha: float) -> None:
    """One clear error for a temperature <= 0 or an alpha outside [0, 1]."""
    if not temperature > 0:
        raise LowrankEdgeError(f"--distill-temperature must be > 0, got {temperature:g}")
    if not 0 <= alpha <= 1:
        raise LowrankEdgeError(f"--distill-alpha must be in [0, 1], got {alpha:g}")


def check_warmup(warmup: float, epochs: int) -> None:
    """One clear error for a negative warm-up, or one of >= 1 epochs that fills the run."""
    if warmup < 0:
        raise LowrankEdgeError(f"--finetune-warmup must be >= 0, got {warmup:g}")
    if warmup >= 1 and warmup >= epochs:
        raise LowrankEdgeError(
            f"--finetune-warmup {warmup:g} epochs takes the whole run of {epochs} epochs: "
            "give fewer epochs than the run, or a fraction of it below 1"
        )


def warmup_steps(warmup: float, steps_per_epoch: int, epochs: int) -> int:
    """Warm-up steps: `warmup` < 1 is a fraction of the whole run, >= 1 a number of epochs;
    at least one step of the run is left after it."""
    check_warmup(warmup, epochs)
    total = steps_per_epoch * epochs
    steps = warmup * total if warmup < 1 else warmup * steps_per_epoch
    return max(min(round(steps), total - 1), 0)


def learning_rate(peak: float, total_steps: int, warmup: int = 0, cosine: bool = True):
    """The rate (a float or a stock Keras schedule): linear warm-up over `warmup` steps, then
    cosine decay over the rest (`cosine`) or the peak held."""
    import keras

    if not cosine and not warmup:
        return peak
    if not warmup:
        return keras.optimizers.schedules.CosineDecay(peak, total_steps, alpha=FINAL_RATE_FRACTION)
    return keras.optimizers.schedules.CosineDecay(
        0.0,
        max(total_steps - warmup, 1),
        alpha=FINAL_RATE_FRACTION if cosine else 1.0,  # alpha 1: the peak held after warm-up
        warmup_target=peak,
        warmup_steps=warmup,
    )


def make_optimizer(name: str, rate):
    """Adam, or SGD with Nesterov momentum 0.9, at `rate` (a float or a schedule)."""
    import keras

    if name == "adam":
        return keras.optimizers.Adam(rate)
    if name == "sgd":
        return keras.optimizers.SGD(rate, momentum=SGD_MOMENTUM, nesterov=True)
    raise LowrankEdgeError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")


def batchnorm_layers(model) -> list:
    """Every BatchNormalization layer of `model`, nested models included."""
    import keras

    found, stack = [], list(model.layers)
    while stack:
        layer = stack.pop()
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            stack.extend(layer.layers)
    return found


@contextlib.contextmanager
def frozen_batchnorm(model, freeze: bool) -> Iterator[None]:
    """With `freeze`, run the block with every BatchNorm layer of `model` not trainable (so in
    inference mode, its moving statistics fixed); the flags are restored after it."""
    if not freeze:
        yield
        return
    layers = batchnorm_layers(model)
    if not layers:
        raise LowrankEdgeError("--freeze-bn: the model has no BatchNormalization layer")
    flags = [layer.trainable for layer in layers]
    try:
        for layer in layers:
            layer.trainable = False
        yield
    finally:
        for layer, flag in zip(layers, flags, strict=True):
            layer.trainable = flag
