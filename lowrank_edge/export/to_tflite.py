"""Keras model -> TFLite flatbuffer, through a SavedModel with an explicit serving signature.

The SavedModel path (Keras `ExportArchive`, then `TFLiteConverter.from_saved_model`) carries the
variables with the graph; converting a bare concrete function once produced an all-NaN model.
The signature takes `image` (dynamic batch) and returns `logits`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.export.variants import INPUT_NAME, OUTPUT_NAME, TFLITE_VARIANTS

SIGNATURE = "serving_default"


def write_saved_model(model, input_shape: tuple[int | None, ...], path: Path) -> Path:
    """Write `model` as a SavedModel whose `serving_default` maps image -> logits."""
    import tensorflow as tf
    from keras.export import ExportArchive

    spec = tf.TensorSpec((None, *input_shape[1:]), tf.float32, name=INPUT_NAME)
    archive = ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=SIGNATURE,
        fn=lambda image: {OUTPUT_NAME: model(image, training=False)},
        input_signature=[spec],
    )
    archive.write_out(str(path), verbose=False)
    return path


# The converter's switch for per-tensor weight scales. Private (no public option exists), but
# stable across TensorFlow 2.x releases; checked before use.
PER_TENSOR_SWITCH = "_experimental_disable_per_channel"
PER_TENSOR_VARIANTS = ("int8-dynamic", "int8-full")


def convert_tflite(
    saved_model: Path,
    variant: str,
    representative: np.ndarray | None = None,
    int8_io: str | None = None,
    per_tensor_weights: bool = False,
) -> bytes:
    """Convert a SavedModel to one TFLite variant.

    float32: as is; float16: float16 weights; int8-dynamic: int8 weights, float activations;
    int8-full: int8 weights and activations calibrated on `representative` (float32 images),
    with `int8_io` ("uint8"/"int8") integer input/output or float I/O when None.
    `per_tensor_weights`: the int8 variants get one weight scale per tensor instead of one per
    output channel (about 12 bytes less per channel; a small model's file shrinks by a quarter).
    """
    import tensorflow as tf

    if variant not in TFLITE_VARIANTS:
        raise LowrankEdgeError(
            f"unknown TFLite variant {variant!r}; choose from {', '.join(TFLITE_VARIANTS)}"
        )
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), [SIGNATURE])
    if variant != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if variant == "int8-full":
        if representative is None or len(representative) == 0:
            raise LowrankEdgeError("the int8-full variant needs representative images (a dataset)")
        converter.representative_dataset = lambda: _one_by_one(representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io is not None:
            io_type = {"uint8": tf.uint8, "int8": tf.int8}[int8_io]
            converter.inference_input_type = io_type
            converter.inference_output_type = io_type
    if per_tensor_weights and variant in PER_TENSOR_VARIANTS:
        if not hasattr(converter, PER_TENSOR_SWITCH):
            raise LowrankEdgeError(
                f"this TensorFlow's converter has no {PER_TENSOR_SWITCH} switch: per-tensor "
                "weights are not available with it"
            )
        setattr(converter, PER_TENSOR_SWITCH, True)
    return converter.convert()


def _one_by_one(images: np.ndarray) -> Iterator[list[np.ndarray]]:
    for index in range(len(images)):
        yield [images[index : index + 1].astype(np.float32)]
