"""Analytic cost of a Keras model: parameters and multiply-accumulates (MACs) per layer.

What is counted:
- params: every weight of every leaf layer, trainable or not (BatchNorm moving statistics
  included), each layer counted once however often it is called; nested sub-models are walked.
- MACs: only the multiply-accumulates of conv and dense kernels, per call (a shared layer or a
  nested model called twice counts twice), for one input sample (batch size 1), from the
  shapes Keras recorded when the model was built:
  Conv1D/2D/3D (any stride, dilation, padding, groups): output elements x kernel window x
  input channels per group; Conv*Transpose: input elements x kernel window x output channels
  (products landing in cropped padding are counted too); DepthwiseConv1D/2D: output elements x
  kernel window; SeparableConv1D/2D: its depthwise part plus its 1x1 pointwise part; Dense
  (also on rank > 2 inputs): output elements x input units.
- Not counted (0 MACs): bias adds, BatchNorm, activations, Add/Concatenate, pooling, resizing,
  and every other layer class (EinsumDense, attention, recurrent layers included).
FLOPs = 2 x MACs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import keras

from lowrank_edge.compress.graph import LayerCall, group_by_layer, layer_calls, sample_elements

_L = keras.layers
_SEPARABLE = (_L.SeparableConv1D, _L.SeparableConv2D)
_DEPTHWISE = (_L.DepthwiseConv1D, _L.DepthwiseConv2D)
_TRANSPOSE = (_L.Conv1DTranspose, _L.Conv2DTranspose, _L.Conv3DTranspose)
_CONV = (_L.Conv1D, _L.Conv2D, _L.Conv3D)


@dataclass(frozen=True)
class LayerCost:
    """Cost of one leaf layer: params counted once, MACs summed over all its calls."""

    name: str
    class_name: str
    params: int
    macs: int


@dataclass(frozen=True)
class ModelCost:
    """Totals and per-layer costs of a model (see the module docstring for what is counted)."""

    params: int
    trainable_params: int
    macs: int
    layers: list[LayerCost] = field(default_factory=list)

    @property
    def flops(self) -> int:
        """Floating-point operations: one multiply and one add per MAC."""
        return 2 * self.macs

    def to_dict(self) -> dict:
        """Plain JSON-ready data."""
        return {
            "params": self.params,
            "trainable_params": self.trainable_params,
            "macs": self.macs,
            "flops": self.flops,
            "layers": [asdict(layer) for layer in self.layers],
        }


def _window(layer: keras.layers.Layer) -> int:
    return math.prod(layer.kernel_size)


def call_macs(call: LayerCall) -> int:
    """Multiply-accumulates of one layer call (0 for layers without a conv/dense kernel)."""
    layer = call.layer
    if not isinstance(layer, (*_SEPARABLE, *_DEPTHWISE, *_TRANSPOSE, *_CONV, _L.Dense)):
        return 0
    out = sample_elements(call.output_shapes[0], call.path)
    if isinstance(layer, _SEPARABLE):
        cin_times_mult = math.prod(layer.depthwise_kernel.shape[-2:])
        positions = out // layer.filters
        return positions * cin_times_mult * (_window(layer) + layer.filters)
    if isinstance(layer, _DEPTHWISE):
        return out * _window(layer)
    if isinstance(layer, _TRANSPOSE):
        return sample_elements(call.input_shapes[0], call.path) * _window(layer) * layer.filters
    if isinstance(layer, _CONV):  # kernel (*window, cin // groups, cout)
        return out * _window(layer) * layer.kernel.shape[-2]
    return out * call.input_shapes[0][-1]  # Dense: every output element reads all inputs


def _size(weights) -> int:
    return sum(math.prod(w.shape) for w in weights)


def _unique(weights) -> list:
    return list({id(w): w for w in weights}.values())


def model_cost(model: keras.Model) -> ModelCost:
    """Params and MACs of a built Sequential/Functional model, per leaf layer and in total."""
    layers = [
        LayerCost(
            name=calls[0].path,
            class_name=type(calls[0].layer).__name__,
            params=_size(calls[0].layer.weights),
            macs=sum(call_macs(call) for call in calls),
        )
        for calls in group_by_layer(layer_calls(model))
    ]
    return ModelCost(
        params=_size(_unique(model.weights)),
        trainable_params=_size(_unique(model.trainable_weights)),
        macs=sum(layer.macs for layer in layers),
        layers=layers,
    )
