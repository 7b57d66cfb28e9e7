"""Find the layers worth reporting in a model and describe the factorable ones.

A candidate is a leaf layer with a kernel-like weight (see `support`). A supported candidate
gets a `LayerSpectrum` (matrix view, singular values, positions over all its calls); an
unsupported one gets the reason it is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from lowrank_edge.compress.graph import LayerCall, group_by_layer, layer_calls, sample_elements
from lowrank_edge.compress.spectrum import LayerSpectrum, kernel_matrix, singular_values
from lowrank_edge.compress.support import is_candidate, unsupported_reason


@dataclass(frozen=True, eq=False)
class Candidate:
    """A reported layer: its path, the layer, and either a spectrum or an unsupported reason."""

    path: str
    layer: keras.layers.Layer
    spectrum: LayerSpectrum | None
    unsupported: str | None


def layer_spectrum(calls: list[LayerCall]) -> LayerSpectrum:
    """The spectrum and cost facts of a Conv2D/Dense layer from all its calls."""
    layer = calls[0].layer
    kernel = layer.kernel.numpy()
    matrix = kernel_matrix(kernel)
    n = matrix.shape[1]
    positions = sum(sample_elements(c.output_shapes[0], c.path) // n for c in calls)
    return LayerSpectrum(
        name=calls[0].path,
        class_name=type(layer).__name__,
        kernel_shape=tuple(int(d) for d in kernel.shape),
        matrix_shape=(int(matrix.shape[0]), int(n)),
        singular_values=singular_values(matrix),
        positions=int(positions),
        bias_params=int(np.prod(layer.bias.shape)) if layer.use_bias else 0,
        calls=len(calls),
    )


def find_candidates(model: keras.Model) -> list[Candidate]:
    """Every reported layer of `model` (nested models walked), in graph order, once each."""
    candidates = []
    for calls in group_by_layer(layer_calls(model)):
        layer = calls[0].layer
        if not is_candidate(layer):
            continue
        reason = unsupported_reason(layer)
        spectrum = None if reason else layer_spectrum(calls)
        candidates.append(Candidate(calls[0].path, layer, spectrum, reason))
    return candidates
