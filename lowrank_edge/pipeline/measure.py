"""Measure a model: parameters, MACs/FLOPs, file size and accuracy on each split."""

from __future__ import annotations

import os
from pathlib import Path

from lowrank_edge.data.dataset import Dataset
from lowrank_edge.model.train import accuracy


def cost_record(model) -> dict:
    """Params (total, trainable) and MACs/FLOPs of `model`, from the analytic cost model."""
    from lowrank_edge.compress.cost import model_cost

    cost = model_cost(model)
    return {
        "params": int(cost.params),
        "trainable_params": int(cost.trainable_params),
        "macs": int(cost.macs),
        "flops": int(cost.flops),
    }


def accuracy_record(model, data: Dataset) -> dict:
    """Validation and test accuracy: {"val": ..., "test": ...}."""
    return {
        "val": accuracy(model, data.x_val, data.y_val),
        "test": accuracy(model, data.x_test, data.y_test),
    }


def file_bytes(path: str | os.PathLike) -> int:
    """Size of a saved model file in bytes."""
    return Path(path).stat().st_size


def relative_figures(record: dict, original: dict) -> dict:
    """Reductions and the theoretical speedup of `record` against the `original` record."""
    return {
        "param_reduction": 1.0 - record["params"] / original["params"],
        "size_reduction": 1.0 - record["file_bytes"] / original["file_bytes"],
        "mac_reduction": 1.0 - record["macs"] / original["macs"],
        "theoretical_speedup": original["macs"] / record["macs"],
    }
