"""The manifest's facts about a model and an export: I/O, cost, origin, versions, samples.

Pure helpers over a loaded Keras model and a `Dataset`; the exporter assembles their results
into the runtime's manifest dataclasses.
"""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from lowrank_edge import __version__
from lowrank_edge.data.dataset import Dataset
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.export.variants import INPUT_NAME, OUTPUT_NAME
from lowrank_edge.fileio import sha256_file
from lowrank_edge.runtime.manifest import (
    InputInfo,
    ModelInfo,
    OutputInfo,
    Provenance,
    SamplesInfo,
    SourceInfo,
    decode_samples,
)

INPUT_RANGE = (0.0, 1.0)  # the Dataset contract: float32 images in [0, 1]


def io_facts(model, model_path: Path) -> tuple[InputInfo, OutputInfo]:
    """The model's single image input and single logits output; error for anything else."""
    inputs, outputs = list(model.inputs or []), list(model.outputs or [])
    if len(inputs) != 1 or len(outputs) != 1:
        raise LowrankEdgeError(
            f"{model_path}: export needs one input and one output, "
            f"the model has {len(inputs)} and {len(outputs)}"
        )
    in_shape, out_shape = tuple(inputs[0].shape), tuple(outputs[0].shape)
    if len(out_shape) != 2 or out_shape[1] is None:
        raise LowrankEdgeError(
            f"{model_path}: expected logits of shape (N, classes), got {out_shape}"
        )
    if any(d is None for d in in_shape[1:]):
        raise LowrankEdgeError(f"{model_path}: input shape {in_shape} must be fixed but for batch")
    return (
        InputInfo(INPUT_NAME, (None, *map(int, in_shape[1:])), "float32", INPUT_RANGE),
        OutputInfo(OUTPUT_NAME, (None, int(out_shape[1]))),
    )


def check_dataset(dataset: Dataset, inp: InputInfo, out: OutputInfo, model_path: Path) -> None:
    """The dataset must fit the model: same image shape, same number of classes."""
    if tuple(dataset.x_test.shape[1:]) != tuple(inp.shape[1:]):
        raise LowrankEdgeError(
            f"dataset {dataset.name} has images of shape {dataset.x_test.shape[1:]}, "
            f"{model_path} expects {inp.shape[1:]}"
        )
    if dataset.num_classes != out.shape[1]:
        raise LowrankEdgeError(
            f"dataset {dataset.name} has {dataset.num_classes} classes, "
            f"{model_path} outputs {out.shape[1]}"
        )


def read_sidecar(path: Path) -> dict[str, Any] | None:
    """The compression facts written by `compress` beside the model, or None if there are none."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LowrankEdgeError(
            f"{path}: not a valid compression sidecar (JSON): {error}"
        ) from error
    if not isinstance(data, dict):
        raise LowrankEdgeError(f"{path}: compression sidecar must hold a JSON object")
    return data


def model_info(
    model,
    model_path: Path,
    out_dir: Path,
    dataset: Dataset | None,
    compression: dict[str, Any] | None,
) -> ModelInfo:
    """Everything the manifest says about the model (cost from `lowrank_edge.compress.cost`)."""
    from lowrank_edge.compress.cost import model_cost

    inp, out = io_facts(model, model_path)
    cost = model_cost(model)
    classes = out.shape[1]
    labels = tuple(dataset.labels) if dataset is not None else tuple(str(i) for i in range(classes))
    return ModelInfo(
        name=model_path.stem,
        dataset=dataset.name if dataset is not None else None,
        num_classes=classes,
        labels=labels,
        input=inp,
        output=out,
        params=int(cost.params),
        trainable_params=int(cost.trainable_params),
        macs=int(cost.macs),
        flops=int(cost.flops),
        source=SourceInfo(path=_relative(model_path, out_dir), sha256=sha256_file(model_path)),
        compression=compression,
    )


def provenance() -> Provenance:
    """The time and the versions of everything that shaped the artifacts."""
    return Provenance(
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        lowrank_edge=__version__,
        tensorflow=_version("tensorflow", "tensorflow-cpu"),
        keras=_version("keras"),
        tf2onnx=_version("tf2onnx"),
        onnx=_version("onnx"),
        onnxruntime=_version("onnxruntime"),
        ai_edge_litert=_version("ai-edge-litert"),
        python=platform.python_version(),
    )


def pick_test_samples(dataset: Dataset, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`count` test images and labels in a fixed seeded order (the same prefix for any count)."""
    order = np.random.default_rng(seed).permutation(len(dataset.x_test))[:count]
    return dataset.x_test[order], dataset.y_test[order]


def pick_representative(dataset: Dataset, count: int = 200, seed: int = 0) -> np.ndarray:
    """Training images for int8 calibration (seeded random subset)."""
    order = np.random.default_rng(seed).permutation(len(dataset.x_train))[:count]
    return dataset.x_train[order].astype(np.float32)


def write_samples(path: Path, x: np.ndarray, y: np.ndarray) -> SamplesInfo:
    """Save images (uint8 when that is lossless, else float32) and labels with `np.savez`."""
    as_uint8 = np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)
    stored = as_uint8 if np.array_equal(decode_samples(as_uint8, INPUT_RANGE), x) else x
    with open(path, "wb") as handle:  # a file object: np.savez must not append ".npz"
        np.savez(handle, x=stored, y=y.astype(np.int64))
    return SamplesInfo(file=path.name, sha256=sha256_file(path), count=int(len(x)))


def _relative(path: Path, start: Path) -> str:
    try:
        return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return str(path.resolve())


def _version(*distributions: str) -> str | None:
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None
