"""Distillation from the original model while fine-tuning its compressed copy.

loss = alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(labels),
per sample, weighted by the sample (class) weights and averaged over the batch like Keras's own
losses. A head that outputs probabilities gives its logits back as log(clip(p)): softmax is
shift-invariant, so softmax(log p / T) is the tempered softmax of the true logits. The teacher
runs frozen, in inference mode, on the same (augmented) batch as the student. `Distiller` is a
wrapper used only inside `fit`: the student is trained in place and saved as the plain model.

Block outputs may be matched too (`features`: globs of layer names): every top-level layer named
in both models whose output shapes are equal adds mean((s - t)^2) / mean(t^2) to the loss, the
squared error relative to the teacher's own energy, averaged over the matched layers.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

import keras
from keras import ops

from lowrank_edge.errors import LowrankEdgeError

PROBABILITY_FLOOR = 1e-7  # as Keras clips probabilities in its cross-entropy


def as_logits(outputs, from_logits: bool):
    """The outputs as logits: themselves, or log of the (clipped) probabilities."""
    if from_logits:
        return outputs
    return ops.log(ops.clip(outputs, PROBABILITY_FLOOR, 1.0))


def distillation_loss(
    labels,
    student,
    teacher,
    *,
    temperature: float,
    alpha: float,
    from_logits: bool,
    sample_weight=None,
):
    """The batch's distillation loss (a scalar); `student`/`teacher` are the models' outputs,
    logits or probabilities as `from_logits` says (the same head on both)."""
    soft_teacher = ops.softmax(as_logits(teacher, from_logits) / temperature, axis=-1)
    log_student = ops.log_softmax(as_logits(student, from_logits) / temperature, axis=-1)
    log_teacher = ops.log(ops.clip(soft_teacher, 1e-30, 1.0))
    kl = ops.sum(soft_teacher * (log_teacher - log_student), axis=-1)
    hard = keras.losses.sparse_categorical_crossentropy(labels, student, from_logits=from_logits)
    per_sample = alpha * temperature**2 * kl + (1.0 - alpha) * hard
    if sample_weight is not None:
        per_sample = per_sample * ops.cast(ops.reshape(sample_weight, (-1,)), per_sample.dtype)
    return ops.mean(per_sample)


def matched_layers(student, teacher, patterns: Sequence[str]) -> list[str]:
    """Names of the top-level layers matching `patterns` in both models with equal output
    shapes, in the student's order; a pattern that matches no such layer is refused."""
    names, teacher_names = [], {layer.name for layer in teacher.layers}
    for pattern in patterns:
        found = [
            layer.name
            for layer in student.layers
            if fnmatch.fnmatchcase(layer.name, pattern)
            and layer.name in teacher_names
            and _shape(layer) == _shape(teacher.get_layer(layer.name))
        ]
        if not found:
            raise LowrankEdgeError(
                f"--distill-features {pattern!r} matches no layer whose output has the same shape "
                "in the original and the compressed model (block outputs such as '*_out' or "
                "'*_add' do; factorised layers do not)"
            )
        names += [name for name in found if name not in names]
    return names


def _shape(layer) -> tuple:
    output = layer.output
    return tuple(output.shape) if hasattr(output, "shape") else ()


def with_features(model, names: Sequence[str]):
    """A model sharing `model`'s layers that outputs [its output, *the named layers' outputs]."""
    return keras.Model(
        model.inputs, [model.outputs[0], *(model.get_layer(n).output for n in names)]
    )


@dataclass(frozen=True, eq=False)
class _Frozen:
    """Holds the teacher out of Keras's tracking: its weights are neither trained nor saved."""

    model: keras.Model


def per_replica(loss):
    """`loss` divided by the strategy's replica count, as Keras' own losses divide theirs.

    Under `tf.distribute` the replicas' gradients are summed and Keras' trainer multiplies the
    loss it reports back by the replica count, so a loss computed by hand must be divided, or
    its gradients and its logged value come out n times too large (seen as a doubled val_loss
    with 2 workers). Without a strategy n is 1 and nothing changes."""
    import tensorflow as tf

    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss if replicas == 1 else loss * ops.cast(1.0 / replicas, loss.dtype)


class Distiller(keras.Model):
    """Fit-time wrapper: calls the student; its loss also reads the frozen teacher (and, with
    `features`, the block outputs of both)."""

    def __init__(
        self,
        student,
        teacher,
        temperature: float,
        alpha: float,
        from_logits: bool,
        features: Sequence[str] = (),
    ):
        super().__init__(name=f"{student.name}_distiller")
        if tuple(student.output_shape) != tuple(teacher.output_shape):
            raise LowrankEdgeError(
                f"distillation needs the same output shape in the original model "
                f"{tuple(teacher.output_shape)} and the compressed one "
                f"{tuple(student.output_shape)}"
            )
        self.features = matched_layers(student, teacher, features) if features else []
        self.student = with_features(student, self.features) if self.features else student
        self._teacher = _Frozen(with_features(teacher, self.features) if self.features else teacher)
        self.temperature, self.alpha, self.from_logits = temperature, alpha, from_logits

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    def _final(self, outputs):
        return outputs[0] if self.features else outputs

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        teacher = keras.tree.map_structure(
            ops.stop_gradient, self._teacher.model(x, training=False)
        )
        loss = distillation_loss(
            y,
            self._final(y_pred),
            self._final(teacher),
            temperature=self.temperature,
            alpha=self.alpha,
            from_logits=self.from_logits,
            sample_weight=sample_weight,
        )
        if self.features:
            terms = [
                ops.mean(ops.square(s - t)) / (ops.mean(ops.square(t)) + 1e-12)
                for s, t in zip(y_pred[1:], teacher[1:], strict=True)
            ]
            loss = loss + ops.mean(ops.stack(terms))
        extra = self.losses  # the student's regularisation losses, as a compiled loss adds
        return per_replica(loss + ops.sum(ops.stack(extra)) if extra else loss)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(x, y, self._final(y_pred), sample_weight)
