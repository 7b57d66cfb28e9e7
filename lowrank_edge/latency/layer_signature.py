"""A layer call's shape signature: everything that sets its latency, nothing that does not.

Class, input shape (batch dropped), kernel shape, strides, padding, dilation, data format,
activation and bias; not the name or the weight values. Layers with equal signatures share
their micro-models, so one latency table serves every model that has those layer shapes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from lowrank_edge.compress.analyse import ModelAnalysis
from lowrank_edge.compress.graph import LayerCall, group_by_layer, layer_calls
from lowrank_edge.errors import CompressionError


@dataclass(frozen=True)
class LayerSignature:
    """The latency-relevant facts of one Conv2D or Dense call (Dense: no strides/padding)."""

    class_name: str
    input_shape: tuple[int, ...]
    kernel_shape: tuple[int, ...]
    strides: tuple[int, ...] = ()
    padding: str = ""
    dilation: tuple[int, ...] = ()
    data_format: str = ""
    activation: str = "linear"
    use_bias: bool = True

    @property
    def key(self) -> str:
        """A readable, canonical string, e.g. `Conv2D in=28x28x1 k=3x3x1x16 s=1x1 ...`."""

        def dims(values: tuple[int, ...]) -> str:
            return "x".join(str(v) for v in values)

        parts = [self.class_name, f"in={dims(self.input_shape)}", f"k={dims(self.kernel_shape)}"]
        if self.strides:
            parts += [
                f"s={dims(self.strides)}",
                f"p={self.padding}",
                f"d={dims(self.dilation)}",
                f"f={self.data_format}",
            ]
        parts += [f"act={self.activation}", "bias" if self.use_bias else "nobias"]
        return " ".join(parts)

    @property
    def matrix_shape(self) -> tuple[int, int]:
        """(m, n): the kernel viewed as a matrix, as the spectrum sees it."""
        m = 1
        for d in self.kernel_shape[:-1]:
            m *= d
        return m, self.kernel_shape[-1]

    def to_dict(self) -> dict:
        """Plain JSON-ready fields plus the key and the matrix shape."""
        return {"key": self.key, **asdict(self), "matrix_shape": list(self.matrix_shape)}


def _activation_name(config: dict) -> str:
    activation = config.get("activation", "linear")
    if isinstance(activation, str):
        return activation
    return json.dumps(activation, sort_keys=True, separators=(",", ":"))


def call_signature(call: LayerCall) -> LayerSignature:
    """The signature of one call of a Conv2D or Dense layer."""
    layer, shape = call.layer, call.input_shapes[0][1:]
    if any(d is None for d in shape):
        raise CompressionError(
            f"layer '{call.path}' has input shape {call.input_shapes[0]} with unknown "
            "dimensions; its latency cannot be measured: build the model with a fixed input shape"
        )
    config = layer.get_config()
    common = {
        "class_name": type(layer).__name__,
        "input_shape": tuple(int(d) for d in shape),
        "kernel_shape": tuple(int(d) for d in layer.kernel.shape),
        "activation": _activation_name(config),
        "use_bias": bool(layer.use_bias),
    }
    if "strides" not in config:
        return LayerSignature(**common)
    return LayerSignature(
        **common,
        strides=tuple(int(s) for s in config["strides"]),
        padding=str(config["padding"]),
        dilation=tuple(int(d) for d in config["dilation_rate"]),
        data_format=str(config.get("data_format") or "channels_last"),
    )


def layer_calls_by_path(analysis: ModelAnalysis) -> dict[str, list[LayerCall]]:
    """Every call of every factorable layer, by layer path, in graph order."""
    wanted = {c.path for c in analysis.factorable}
    groups = group_by_layer(layer_calls(analysis.model))
    return {calls[0].path: calls for calls in groups if calls[0].path in wanted}


def signature_keys(analysis: ModelAnalysis) -> dict[str, tuple[str, ...]]:
    """Layer path -> the signature key of each of its calls (a shared layer has several)."""
    return {
        path: tuple(call_signature(call).key for call in calls)
        for path, calls in layer_calls_by_path(analysis).items()
    }
