"""Latency tables made in memory, so allocation tests do not depend on a clock."""

from __future__ import annotations

from collections.abc import Callable

import keras

from lowrank_edge.benchmark.latency_table import Condition, LatencyTable, TableEntry
from lowrank_edge.compress.analyse import ModelAnalysis
from lowrank_edge.latency.layer_signature import call_signature, layer_calls_by_path
from lowrank_edge.latency.micro_models import kit_ranks

LITERT_1_1 = Condition("litert", 1, 1)

P50 = Callable[[str, "int | None", tuple[int, int]], "float | None"]


def fake_table(
    analysis: ModelAnalysis, p50: P50, condition: Condition = LITERT_1_1
) -> LatencyTable:
    """Dense and every kit rank of each signature, p50 = p50(path, rank, matrix_shape)."""
    entries, seen = [], set()
    for path, calls in layer_calls_by_path(analysis).items():
        for call in calls:
            signature = call_signature(call)
            if signature.key in seen:
                continue
            seen.add(signature.key)
            for rank in [None, *kit_ranks(signature.matrix_shape)]:
                value = p50(path, rank, signature.matrix_shape)
                entries.append(TableEntry(signature.key, rank, "layer", condition, value, {}))
    return LatencyTable(tuple(entries), {}, {}, {}, {}, "2025-01-01T00:00:00+00:00")


def tiny_model() -> keras.Model:
    """A strided conv and two Dense layers (12 kit micro-models)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((9, 9, 4), name="image")
    x = keras.layers.Conv2D(8, 3, strides=2, padding="valid", activation="relu", name="conv")(
        inputs
    )
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(16, activation="relu", name="fc")(x)
    outputs = keras.layers.Dense(5, name="logits")(x)
    return keras.Model(inputs, outputs, name="tiny")
