"""Parity of an exported artifact with its Keras model: logit differences, argmax, accuracy.

Every artifact is run in its own runtime on real test samples and compared with Keras; a broken
conversion (e.g. an all-NaN model) fails here instead of reaching a device. `measure_accuracy`
counts an artifact's correct predictions on the whole test split, for the manifest.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.export.variants import Tolerance
from lowrank_edge.runtime.manifest import AccuracyInfo, Parity
from lowrank_edge.runtime.runner import Runner

BATCH_SIZE = 128


class ParityError(LowrankEdgeError):
    """An artifact missed its export gate (with --strict: it was left out) or its tolerance."""


def keras_logits(model, x: np.ndarray, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """The Keras model's float32 logits for `x` (inference mode, in batches)."""
    parts = [
        np.asarray(model(x[start : start + batch_size], training=False), dtype=np.float32)
        for start in range(0, len(x), batch_size)
    ]
    return np.concatenate(parts)


def runner_logits(runner: Runner, x: np.ndarray, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """The artifact's float32 logits for `x`, predicted in batches."""
    parts = [
        runner.predict(x[start : start + batch_size]) for start in range(0, len(x), batch_size)
    ]
    return np.concatenate(parts)


def compare_logits(
    reference: np.ndarray,
    candidate: np.ndarray,
    labels: np.ndarray | None,
    tolerance: Tolerance,
) -> Parity:
    """Measure candidate logits against the Keras reference and apply `tolerance`.

    Rows with a non-finite logit count as disagreeing and wrong; their difference is infinite.
    """
    if candidate.shape != reference.shape:
        raise LowrankEdgeError(
            f"artifact output has shape {candidate.shape}, Keras gives {reference.shape}"
        )
    diff = np.abs(candidate.astype(np.float64) - reference.astype(np.float64))
    diff[~np.isfinite(diff)] = np.inf
    predicted = predicted_classes(candidate)
    expected = np.argmax(reference, axis=1)
    accuracy = keras_accuracy = None
    if labels is not None:
        accuracy = float(np.mean(predicted == labels))
        keras_accuracy = float(np.mean(expected == labels))
    parity = Parity(
        samples=int(len(reference)),
        max_abs_diff=float(diff.max()) if diff.size else 0.0,
        mean_abs_diff=float(diff.mean()) if diff.size else 0.0,
        argmax_agreement=float(np.mean(predicted == expected)),
        accuracy=accuracy,
        keras_accuracy=keras_accuracy,
        passed=True,
        tolerance=tolerance.to_dict(),
    )
    return replace(parity, passed=not parity_failures(parity, tolerance))


def predicted_classes(logits: np.ndarray) -> np.ndarray:
    """The argmax class of each row; -1 (never a label) for a row with a non-finite logit."""
    finite_rows = np.isfinite(logits).all(axis=1)
    return np.where(finite_rows, np.argmax(np.nan_to_num(logits), axis=1), -1)


def measure_accuracy(
    logits: np.ndarray, labels: np.ndarray, keras_predicted: np.ndarray
) -> AccuracyInfo:
    """An artifact's accuracy from its `logits` on labelled images, beside the Keras model's
    (`keras_predicted`: the classes Keras gives on the same images)."""
    if not len(logits) == len(labels) == len(keras_predicted):
        raise LowrankEdgeError(
            f"{len(logits)} logit rows, {len(labels)} labels and {len(keras_predicted)} Keras "
            "predictions: they must match"
        )
    images = int(len(labels))
    correct = int(np.sum(predicted_classes(logits) == labels))
    keras_correct = int(np.sum(np.asarray(keras_predicted) == labels))
    return AccuracyInfo(
        images=images,
        correct=correct,
        accuracy=correct / images if images else 0.0,
        keras_correct=keras_correct,
        keras_accuracy=keras_correct / images if images else 0.0,
    )


def parity_failures(parity: Parity, tolerance: Tolerance) -> list[str]:
    """Why `parity` misses `tolerance`, one phrase per broken limit (empty when it passes)."""
    problems = []
    if tolerance.max_abs_diff is not None and not parity.max_abs_diff <= tolerance.max_abs_diff:
        problems.append(f"max |dlogit| {parity.max_abs_diff:.3g} > {tolerance.max_abs_diff:g}")
    if (
        tolerance.argmax_agreement is not None
        and not parity.argmax_agreement >= tolerance.argmax_agreement
    ):
        problems.append(
            f"argmax agreement {parity.argmax_agreement:.2%} < {tolerance.argmax_agreement:.0%}"
        )
    if (
        tolerance.accuracy_points is not None
        and parity.accuracy is not None
        and parity.keras_accuracy is not None
    ):
        gap = abs(parity.accuracy - parity.keras_accuracy) * 100
        if gap > tolerance.accuracy_points + 1e-9:
            problems.append(
                f"accuracy {parity.accuracy:.2%} vs Keras {parity.keras_accuracy:.2%} "
                f"({gap:.2f} points > {tolerance.accuracy_points:g})"
            )
    return problems


def describe(parity: Parity) -> str:
    """One line of figures for logs and error messages."""
    text = (
        f"max |dlogit| {parity.max_abs_diff:.3g}, mean {parity.mean_abs_diff:.3g}, "
        f"argmax agreement {parity.argmax_agreement:.2%} on {parity.samples} samples"
    )
    if parity.accuracy is not None:
        text += f", accuracy {parity.accuracy:.2%} (Keras {parity.keras_accuracy:.2%})"
    return text


def describe_accuracy(accuracy: AccuracyInfo) -> str:
    """The whole-test-split accuracy in a few words, for logs."""
    return (
        f"test accuracy {accuracy.accuracy:.2%} (Keras {accuracy.keras_accuracy:.2%}) "
        f"on {accuracy.images:,} images"
    )
