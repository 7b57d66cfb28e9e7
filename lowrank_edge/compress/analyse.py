"""Step 1 of 3, analyse: find the layers worth reporting and describe the factorable ones.

A candidate is a leaf layer with a kernel-like weight (see `support`). A supported candidate
gets a `LayerSpectrum` (matrix view, singular values, positions over all its calls); an
unsupported one gets the reason it is kept. `analyse_model` also applies the include/exclude
patterns, so the next step (`choose`, or a budget allocator) sees exactly the layers it may
factorise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import keras
import numpy as np

from lowrank_edge.compress.graph import (
    LayerCall,
    check_graph_model,
    group_by_layer,
    layer_calls,
    sample_elements,
)
from lowrank_edge.compress.selection import check_patterns, select_layers
from lowrank_edge.compress.spectrum import LayerSpectrum, kernel_matrix, singular_values
from lowrank_edge.compress.support import is_candidate, unsupported_reason
from lowrank_edge.errors import CompressionError


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


@dataclass(frozen=True, eq=False)
class ModelAnalysis:
    """What step 1 found: every candidate in graph order and which ones the patterns exclude."""

    model: keras.Model
    candidates: tuple[Candidate, ...]
    excluded: frozenset[str] = frozenset()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def factorable(self) -> tuple[Candidate, ...]:
        """Supported candidates that the patterns allow: the layers a rank choice may touch."""
        return tuple(
            c for c in self.candidates if c.spectrum is not None and c.path not in self.excluded
        )

    def candidate(self, path: str) -> Candidate:
        """The candidate with this layer path (KeyError if none)."""
        for candidate in self.candidates:
            if candidate.path == path:
                return candidate
        raise KeyError(path)


def analyse_model(
    model: keras.Model, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> ModelAnalysis:
    """Step 1: candidates and spectra of a Sequential/Functional model, patterns applied.

    `include`/`exclude` are fnmatch patterns on layer paths or names; an include pattern that
    matches no layer is an error, an unmatched exclude pattern a warning.
    """
    check_graph_model(model)
    include = check_patterns(include, "include")
    exclude = check_patterns(exclude, "exclude")
    candidates = find_candidates(model)
    selection = select_layers([c.path for c in candidates], include, exclude)
    if selection.unmatched_include:
        names = ", ".join(c.path for c in candidates) or "none"
        raise CompressionError(
            f"include pattern(s) {list(selection.unmatched_include)} match no layer of model "
            f"'{model.name}'; its Conv2D/Dense-like layers are: {names}"
        )
    warnings = tuple(f"exclude pattern '{p}' matches no layer" for p in selection.unmatched_exclude)
    return ModelAnalysis(
        model=model,
        candidates=tuple(candidates),
        excluded=selection.excluded,
        include=include,
        exclude=exclude,
        warnings=warnings,
    )
