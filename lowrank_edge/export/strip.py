"""Drop the strings a TFLite model does not need to run: tensor names, the subgraph name, the
model description and the signature defs (which name the inputs and outputs).

The converter names every tensor after its TensorFlow op path (e.g.
`mini_resnet_1/s3b1_proj_bn_1/batchnorm/add_1;...`), several kilobytes in a small model. LiteRT
runs the model without them; `lowrank_edge.runtime` finds the single input and output by index,
not by name or signature. What is lost: `Interpreter.get_signature_runner()` and readable names
in profiles and model viewers.

TF-free: the flatbuffer is rewritten with `ai_edge_litert.tools.flatbuffer_utils` (the LiteRT
package the runtime already needs); weights, operators, quantisation and metadata are kept.
"""

from __future__ import annotations

import sys

from lowrank_edge.errors import LowrankEdgeError, MissingDependencyError


def strip_tflite_names(content: bytes) -> bytes:
    """`content` (a .tflite flatbuffer) without tensor names, subgraph names, description and
    signature defs; everything the interpreter needs to run it is kept unchanged."""
    utils = _flatbuffer_utils()
    model = _read(utils, content)
    utils.strip_strings(model)
    if sys.byteorder == "big":  # the reader swapped the buffers to host order; files are little
        utils.byte_swap_tflite_model_obj(model, "big", "little")
    return bytes(utils.convert_object_to_bytearray(model))


def tflite_tensor_names(content: bytes) -> list[str]:
    """The names of every tensor of every subgraph, in order ('' for an unnamed tensor)."""
    model = _read(_flatbuffer_utils(), content)
    return [
        (tensor.name or b"").decode("utf-8", errors="replace")
        for subgraph in model.subgraphs or []
        for tensor in subgraph.tensors or []
    ]


def tflite_signature_count(content: bytes) -> int:
    """How many signature defs the model declares (0 once stripped)."""
    return len(_read(_flatbuffer_utils(), content).signatureDefs or [])


def _read(utils, content: bytes):
    try:
        return utils.read_model_from_bytearray(bytearray(content))
    except Exception as error:  # the flatbuffer reader raises many types on a damaged file
        raise LowrankEdgeError(
            f"not a readable TFLite flatbuffer ({type(error).__name__}: {error})"
        ) from error


def _flatbuffer_utils():
    try:
        from ai_edge_litert.tools import flatbuffer_utils
    except ImportError as error:
        raise MissingDependencyError(
            f"stripping TFLite names needs the LiteRT package's flatbuffer tools ({error}); "
            "run: pip install ai-edge-litert"
        ) from error
    return flatbuffer_utils
