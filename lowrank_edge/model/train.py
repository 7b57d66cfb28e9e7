"""Training and fine-tuning: compile, fit with a seeded run, evaluate.

Fine-tuning uses early stopping on validation accuracy and restores the best weights, so it
never hands back a model worse than its best epoch. It may distil from the original model
(`distill`) and choose its warm-up, optimizer and BatchNorm mode (`recipe`). Progress is a
Keras bar on a terminal and one plain line per epoch otherwise (logs, pipes, CI), so a
redirected log holds no progress-bar frames.
"""

from __future__ import annotations

import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TextIO

import numpy as np

from lowrank_edge.data.dataset import Dataset
from lowrank_edge.data.image_files import Images, is_streamed, iter_batches
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.model.batches import DecodeErrors, prefetched, split_batches
from lowrank_edge.model.distribute import (
    DISTRIBUTE_CHOICES,
    PEER_TIMEOUT_S,
    describe,
    make_strategy,
    peers_lost_named,
    replicas_of,
    sharded,
    worker_folder,
)
from lowrank_edge.model.multi_worker_internals import patched_for
from lowrank_edge.model.recipe import (
    DEFAULT_ALPHA,
    DEFAULT_TEMPERATURE,
    OPTIMIZERS,
    check_distill_settings,
    check_warmup,
    frozen_batchnorm,
    learning_rate,
    make_optimizer,
    warmup_steps,
)


@dataclass(frozen=True)
class FitConfig:
    """Settings for one `fit` run (training from scratch or fine-tuning)."""

    epochs: int = 5
    batch_size: int = 128
    learning_rate: float = 2e-3
    seed: int = 0
    cosine_decay: bool = True  # decay the learning rate to ~0 over the run
    patience: int | None = None  # early stopping on val_accuracy; None = off
    augment: bool = False  # random shifts of up to `shift` pixels (train split only)
    balance_classes: bool = False  # weight classes by inverse frequency (skewed train sets)
    shift: int = 2
    verbose: int | None = None  # 0 silent, 1 bar, 2 one line per epoch; None: bar on a tty
    track_test: bool = False  # log test accuracy after each epoch (reported, never selected on)
    keep_start: bool = False  # hand back the starting weights if no epoch beats them on val
    from_logits: bool | None = None  # the loss reads logits (True) or probabilities; None: head
    distill: bool = False  # soft targets from a teacher (the original model) given to `fit`
    distill_temperature: float = DEFAULT_TEMPERATURE
    distill_alpha: float = DEFAULT_ALPHA  # weight of the soft targets; 1 - alpha on the labels
    distill_features: tuple[str, ...] = ()  # globs of block outputs matched too (`distill`)
    warmup: float = 0.0  # linear warm-up: < 1 a fraction of the run, >= 1 epochs; 0 none
    optimizer: str = "adam"  # or "sgd" (Nesterov, momentum 0.9)
    freeze_bn: bool = False  # BatchNorm in inference mode, statistics fixed, during the fit
    distribute: str = "none"  # "mirrored" or "multi-worker" (TF_CONFIG): `model.distribute`
    backup_dir: str | None = None  # BackupAndRestore: a killed run resumes at its last epoch
    peer_timeout: float = PEER_TIMEOUT_S  # multi-worker: wait for peers at most this long

    def recipe(self) -> dict:
        """The fine-tuning recipe as recorded in FitResult (and so sidecars and results)."""
        distill = None
        if self.distill:
            distill = {"temperature": self.distill_temperature, "alpha": self.distill_alpha}
            if self.distill_features:
                distill["features"] = list(self.distill_features)
        return {
            "distill": distill,
            "warmup": self.warmup,
            "optimizer": self.optimizer,
            "freeze_bn": self.freeze_bn,
        }

    def check(self) -> None:
        """One clear error for a setting out of range (before any slow work)."""
        if self.epochs < 1:
            raise ValueError("epochs must be >= 1")
        if self.optimizer not in OPTIMIZERS:
            raise LowrankEdgeError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        check_distill_settings(self.distill_temperature, self.distill_alpha)
        if self.distill_features and not self.distill:
            raise LowrankEdgeError("--distill-features applies with --distill")
        check_warmup(self.warmup, self.epochs)
        if self.distribute not in DISTRIBUTE_CHOICES:
            raise LowrankEdgeError(
                f"distribute must be one of {', '.join(DISTRIBUTE_CHOICES)}, got "
                f"{self.distribute!r}"
            )


@dataclass
class FitResult:
    """What a fit run did: epochs run, best epoch (0: the starting weights were kept, see
    `FitConfig.keep_start`), per-epoch history, wall time, whether the loss read logits, and
    the optimizer's step count at the end (a run resumed from a backup counts its earlier
    steps too)."""

    epochs_run: int
    best_epoch: int
    steps: int = 0
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    from_logits: bool | None = None
    recipe: dict = field(default_factory=dict)  # `FitConfig.recipe()`

    def to_dict(self) -> dict:
        distilled = bool(self.recipe.get("distill"))
        return {
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "steps": self.steps,
            "history": self.history,
            "seconds": round(self.seconds, 2),
            "loss": "distillation" if distilled else "sparse_categorical_crossentropy",
            "from_logits": self.from_logits,
            **self.recipe,
        }


def resolve_from_logits(model, from_logits: bool | None) -> bool:
    """`from_logits` as given, else what the model's head says (`head.outputs_probabilities`)."""
    from lowrank_edge.model.head import outputs_probabilities

    return not outputs_probabilities(model) if from_logits is None else from_logits


def compile_for_training(model, config: FitConfig, steps_per_epoch: int, teacher=None):
    """The model that `fit` trains, compiled: `model` itself with cross-entropy, or a
    `Distiller` around it with `teacher`; the optimizer and schedule follow the recipe.

    Returns (the model to fit, the `from_logits` its loss reads).
    """
    import keras

    from lowrank_edge.model.distill import Distiller

    from_logits = resolve_from_logits(model, config.from_logits)
    total = steps_per_epoch * config.epochs
    warmup = warmup_steps(config.warmup, steps_per_epoch, config.epochs)
    rate = learning_rate(config.learning_rate, total, warmup, config.cosine_decay)
    optimizer = make_optimizer(config.optimizer, rate)
    if not config.distill:
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
            metrics=["accuracy"],
        )
        return model, from_logits
    if teacher is None:
        raise LowrankEdgeError("distillation needs the original model as the teacher")
    wrapper = Distiller(
        model,
        teacher,
        config.distill_temperature,
        config.distill_alpha,
        from_logits,
        features=config.distill_features,
    )
    wrapper.compile(
        optimizer=optimizer, metrics=[keras.metrics.SparseCategoricalAccuracy("accuracy")]
    )
    return wrapper, from_logits


def progress_mode(verbose: int | None, stream: TextIO | None = None) -> int:
    """0 silent, 1 progress bar, 2 one line per epoch; None picks 1 on a terminal, else 2."""
    if verbose is not None:
        if verbose not in (0, 1, 2):
            raise LowrankEdgeError(f"verbose must be 0, 1, 2 or None, got {verbose!r}")
        return verbose
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return 1 if isatty is not None and isatty() else 2
    except ValueError:  # a closed stream
        return 2


def _epoch_logger(epochs: int):
    """A Keras callback printing one self-contained line per epoch (no bar frames)."""
    import keras

    class EpochLines(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            seconds = time.perf_counter() - self.start
            metrics = " - ".join(f"{k}: {float(v):.4f}" for k, v in sorted((logs or {}).items()))
            print(f"Epoch {epoch + 1}/{epochs} - {seconds:.1f}s - {metrics}", flush=True)

    return EpochLines()


def fit(model, data: Dataset, config: FitConfig, teacher=None) -> FitResult:
    """Train `model` in place on data.train, validating on data.val; returns what happened.

    With `config.distill`, `teacher` (the original model, left untouched) gives soft targets.
    """
    import keras

    config.check()
    mode = progress_mode(config.verbose)
    keras.utils.set_random_seed(config.seed)
    steps_per_epoch = int(np.ceil(len(data.x_train) / config.batch_size))
    strategy = make_strategy(config.distribute, config.peer_timeout)
    if strategy is not None:
        print(f"[distribute] {describe(strategy, config.distribute, config.batch_size)}",
              flush=True)  # fmt: skip
    # distributed: train clones built in the strategy's scope (weights copied back at the end)
    models = replicas_of([model, teacher], strategy) if strategy else nullcontext([model, teacher])
    with models as (student, tutor), frozen_batchnorm(student, config.freeze_bn):
        trained, from_logits = compile_for_training(student, config, steps_per_epoch, tutor)
        # Keras 3's fit under multi-worker (multi_worker_internals); a lost peer named
        with patched_for(strategy), peers_lost_named(config.distribute, config.peer_timeout):
            result = _fit_compiled(student, trained, data, config, mode)
    result.from_logits, result.recipe = from_logits, config.recipe()
    return result


def _fit_compiled(model, trained, data: Dataset, config: FitConfig, mode: int) -> FitResult:
    """Run Keras's fit of `trained` (`model`, or a wrapper training it) with the callbacks."""
    import keras

    callbacks = [_epoch_logger(config.epochs)] if mode == 2 else []
    if config.patience is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy",
                mode="max",
                patience=config.patience,
                restore_best_weights=True,
                verbose=1 if mode else 0,
            )
        )
    if config.track_test:
        callbacks.insert(0, _test_accuracy_callback(model, data))
    if config.backup_dir is not None:
        backup = worker_folder(config.distribute, config.backup_dir)  # one per worker
        callbacks.append(keras.callbacks.BackupAndRestore(backup))
    start_weights = model.get_weights() if config.keep_start else None
    start_val = accuracy(model, data.x_val, data.y_val) if config.keep_start else None
    errors = DecodeErrors()
    start = time.perf_counter()
    with errors.raised_as_themselves():
        history = trained.fit(
            _training_batches(data, config, errors),
            validation_data=_validation_data(data, config, errors),
            epochs=config.epochs,
            shuffle=False,  # the tf.data pipeline shuffles (seeded) each epoch
            callbacks=callbacks,
            class_weight=balanced_class_weights(data.y_train, data.num_classes)
            if config.balance_classes
            else None,
            verbose=1 if mode == 1 else 0,  # mode 2: the one-line logger above
        )
    seconds = time.perf_counter() - start
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    val_acc = hist.get("val_accuracy", [0.0])
    best_epoch = int(np.argmax(val_acc)) + 1
    if start_weights is not None and accuracy(model, data.x_val, data.y_val) < start_val:
        model.set_weights(start_weights)  # fine-tuning only made it worse on validation
        best_epoch = 0
    steps = int(trained.optimizer.iterations.numpy())
    return FitResult(len(val_acc), best_epoch, steps, history=hist, seconds=seconds)


def _test_accuracy_callback(model, data: Dataset):
    """A callback adding `test_accuracy` to each epoch's logs (so to the history).

    For reports such as "accuracy after 1 fine-tuning epoch"; early stopping and the restored
    weights still follow the validation split only.
    """
    import keras

    class TestAccuracy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["test_accuracy"] = accuracy(model, data.x_test, data.y_test)

    return TestAccuracy()


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Weights n / (k * count_c), so every class weighs the same in the loss.

    EMNIST-47's training split is skewed (387 to 6,372 images a class) while its test split is
    balanced: without weights the model under-serves the rare letters the test counts equally.
    A class absent from `labels` gets weight 0.
    """
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, len(labels) / (num_classes * np.maximum(counts, 1)), 0.0)
    return {c: float(w) for c, w in enumerate(weights)}


def _training_batches(data: Dataset, config: FitConfig, errors: DecodeErrors):
    """A shuffled, batched tf.data pipeline over the train split, with optional random shifts."""
    import keras

    batches = split_batches(data.x_train, data.y_train, config.batch_size, errors, seed=config.seed)
    if config.distribute != "none":
        batches = sharded(batches)
    if config.augment:
        height, width = data.x_train.shape[1:3]
        shift = keras.layers.RandomTranslation(
            config.shift / height, config.shift / width, fill_mode="constant", seed=config.seed
        )
        # One batch at a time: the layer draws its shifts from one seeded state, and parallel
        # calls would take them in no fixed order (the same seed gave different weights).
        batches = batches.map(lambda x, y: (shift(x, training=True), y))
    return prefetched(batches, data.x_train)


def _validation_data(data: Dataset, config: FitConfig, errors: DecodeErrors):
    """The validation split as Keras takes it: arrays, or in-order batches when streamed or
    distributed (a strategy splits tf.data batches across replicas; Keras' numpy path fails
    on a last batch that does not split evenly)."""
    distributed = config.distribute != "none"
    if not is_streamed(data.x_val) and not distributed:
        return data.x_val, data.y_val
    batches = split_batches(data.x_val, data.y_val, config.batch_size, errors)
    return prefetched(sharded(batches) if distributed else batches, data.x_val)


def accuracy(model, x: Images, y: np.ndarray, batch_size: int = 512) -> float:
    """Top-1 accuracy of a logits or probabilities model on (x, y), without compiling it."""
    if len(x) == 0:
        raise ValueError("cannot compute accuracy on an empty split")
    logits = predict_logits(model, x, batch_size)
    return float(np.mean(np.argmax(logits, axis=-1) == y))


def predict_logits(model, x: Images, batch_size: int = 512) -> np.ndarray:
    """Model outputs for `x` as a numpy array, in batches (no progress bar); a split streamed
    from disk is decoded one batch ahead of the model, never whole."""
    if not is_streamed(x):
        return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    parts = [np.asarray(model.predict_on_batch(batch)) for batch in iter_batches(x, batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, *model.output_shape[1:]), np.float32)
