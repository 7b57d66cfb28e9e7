"""Model/data agreement: the data's image shape and class count must be the model's.

One check for every command that has both a model and data (evaluate, ranks, compress,
export, pipeline), so a mismatch is one error naming both sides instead of a shape error deep
inside Keras or a silently wrong accuracy.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from lowrank_edge.data.dataset import Dataset
from lowrank_edge.errors import LowrankEdgeError


def _shape_text(shape: Sequence[int | None]) -> str:
    return "x".join("?" if d is None else str(int(d)) for d in shape)


def _data_text(dataset: Dataset) -> str:
    source = f" ({dataset.source})" if dataset.source and dataset.source != dataset.name else ""
    return f"data {dataset.name}{source}"


def check_model_data(
    model_path: str | os.PathLike,
    image_shape: Sequence[int | None],
    num_classes: int | None,
    dataset: Dataset,
) -> None:
    """Raise a LowrankEdgeError naming the model file and the data unless the data's images
    have `image_shape` (None: any size on that axis) and its class count is `num_classes`."""
    data_shape = tuple(int(d) for d in dataset.x_test.shape[1:])
    model_shape = tuple(image_shape)
    fits = len(model_shape) == len(data_shape) and all(
        want is None or int(want) == got for want, got in zip(model_shape, data_shape, strict=True)
    )
    if not fits:
        raise LowrankEdgeError(
            f"model {model_path} takes inputs of shape {_shape_text(model_shape)} but "
            f"{_data_text(dataset)} has images of shape {_shape_text(data_shape)}"
        )
    if num_classes is not None and int(num_classes) != dataset.num_classes:
        raise LowrankEdgeError(
            f"model {model_path} outputs {int(num_classes)} classes but {_data_text(dataset)} "
            f"has {dataset.num_classes} classes"
        )


def check_model_fits_data(model, dataset: Dataset, model_path: str | os.PathLike) -> None:
    """`check_model_data` for a loaded Keras model (its first input and output)."""
    inputs, outputs = list(model.inputs or []), list(model.outputs or [])
    if not inputs or not outputs:
        raise LowrankEdgeError(f"model {model_path} has no inputs or outputs to check")
    image_shape = tuple(inputs[0].shape[1:])
    classes = outputs[0].shape[-1]
    check_model_data(model_path, image_shape, classes, dataset)
