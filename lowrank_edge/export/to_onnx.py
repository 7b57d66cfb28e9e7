"""Keras model -> ONNX through tf2onnx, from a tf.function with an explicit input signature.

Input `image` and output `logits` have a dynamic first dimension named `batch`. The function
path (`tf2onnx.convert.from_function`) works with Keras 3 models; the opset is an option.
"""

from __future__ import annotations

from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.export.variants import INPUT_NAME, OUTPUT_NAME

BATCH_DIM = "batch"


def supported_opsets() -> range:
    """The ONNX opsets the installed tf2onnx can target."""
    from tf2onnx import constants

    known = sorted(constants.OPSET_TO_IR_VERSION)
    return range(max(known[0], 7), known[-1] + 1)


def convert_onnx(model, input_shape: tuple[int | None, ...], opset: int = 17) -> bytes:
    """Serialised ONNX model of `model` (float32, dynamic batch) at `opset`."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    opsets = supported_opsets()
    if opset not in opsets:
        raise LowrankEdgeError(
            f"ONNX opset {opset} is not supported by tf2onnx {tf2onnx.__version__} "
            f"(choose {opsets.start}..{opsets.stop - 1})"
        )
    spec = (tf.TensorSpec((None, *input_shape[1:]), tf.float32, name=INPUT_NAME),)

    @tf.function(input_signature=spec)
    def serve(image):
        return {OUTPUT_NAME: model(image, training=False)}

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset)
    name_batch_dimension(proto)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def name_batch_dimension(proto) -> None:
    """Call the first dimension of every graph input and output `batch` (tf2onnx says unk__N)."""
    for value in (*proto.graph.input, *proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = BATCH_DIM
