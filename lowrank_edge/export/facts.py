"""The manifest's facts about a model and an export: I/O, cost, origin, versions, samples.

Pure helpers over a loaded Keras model and a `Dataset`; the exporter assembles their results
into the runtime's manifest dataclasses.
"""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from lowrank_edge import __version__
from lowrank_edge.data.dataset import Dataset
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.export.variants import INPUT_NAME, OUTPUT_NAME
from lowrank_edge.fileio import read_json_file, sha256_file
from lowrank_edge.runtime.manifest import (
    InputInfo,
    ModelInfo,
    OutputInfo,
    Provenance,
    SamplesInfo,
    SourceInfo,
)
from lowrank_edge.runtime.preprocess import DEFAULT_PREPROCESSING, pixels_for


def io_facts(
    model, model_path: Path, dataset: Dataset | None = None
) -> tuple[InputInfo, OutputInfo]:
    """The model's single image input and single logits output; error for anything else.

    The input's value range and preprocessing are the dataset's (without one: `unit`, [0, 1]).
    """
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
    values = {}
    if dataset is not None:
        values = {"range": dataset.input_range, "preprocessing": dataset.preprocessing}
    return (
        InputInfo(INPUT_NAME, (None, *map(int, in_shape[1:])), "float32", **values),
        OutputInfo(OUTPUT_NAME, (None, int(out_shape[1]))),
    )


def read_sidecar(path: Path) -> dict[str, Any] | None:
    """The compression facts written by `compress` beside the model, or None if there are none.

    The JSON is checked against the layout `CompressionResult.to_dict` writes (types of
    every known field, `layers` and `totals` required; extra fields pass), so a damaged
    or hand-edited sidecar is one clear error naming the file and the field.
    """
    if not path.is_file():
        return None
    data = read_json_file(path, "compression sidecar (<model>.compression.json)")
    _check_fields(path, data, "", _SIDECAR_FIELDS, ("layers", "totals"))
    _check_fields(path, data["totals"], "totals", _TOTALS_FIELDS, ())
    for index, layer in enumerate(data["layers"]):
        _check_fields(path, layer, f"layers[{index}]", _LAYER_FIELDS, ("name", "status"))
    return data


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_finite_number(value: Any) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


def _list_of(check: Callable[[Any], bool], length: int | None = None) -> Callable[[Any], bool]:
    return lambda value: (
        isinstance(value, list)
        and (length is None or len(value) == length)
        and all(check(item) for item in value)
    )


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_object(value: Any) -> bool:
    return isinstance(value, dict)


_Check = tuple[Callable[[Any], bool], str]
_COUNT: _Check = (_is_count, "a non-negative integer")
_OPT_COUNT: _Check = (_optional(_is_count), "a non-negative integer or null")
_OPT_NUMBER: _Check = (_optional(_is_finite_number), "a finite number or null")
_TEXT: _Check = (_is_str, "a string")
_OBJECT: _Check = (_is_object, "an object")
_SIDECAR_FIELDS: dict[str, _Check] = {
    "model": _TEXT,
    "settings": _OBJECT,
    "options": _OBJECT,
    "totals": _OBJECT,
    "layers": (_list_of(_is_object), "a list of objects"),
    "warnings": (_list_of(_is_str), "a list of strings"),
}
_TOTALS_FIELDS: dict[str, _Check] = {
    **{key: _COUNT for key in ("params_before", "params_after", "macs_before", "macs_after")},
    "layers_factorised": _COUNT,
    "layers_kept": _COUNT,
    "params_ratio": _OPT_NUMBER,
    "macs_ratio": _OPT_NUMBER,
}
_LAYER_FIELDS: dict[str, _Check] = {
    "name": _TEXT,
    "class_name": _TEXT,
    "status": _TEXT,
    "kernel_shape": (_optional(_list_of(_is_count)), "a list of non-negative integers or null"),
    "matrix_shape": (_optional(_list_of(_is_count, 2)), "[rows, cols] integers or null"),
    **{key: _OPT_COUNT for key in ("full_rank", "chosen_rank", "rank_kept")},
    "energy_squared": _OPT_NUMBER,
    "energy_abs": _OPT_NUMBER,
    **{key: _COUNT for key in ("params_before", "params_after", "macs_before", "macs_after")},
}


def _check_fields(
    path: Path, data: Any, where: str, fields: dict[str, _Check], required: tuple[str, ...]
) -> None:
    """Raise a LowrankEdgeError naming `path` and the dotted field for a missing or mistyped one."""
    if not isinstance(data, dict):
        label = f"field '{where}'" if where else "the top level"
        raise LowrankEdgeError(
            f"{path}: compression sidecar: {label} must be an object, got {_json_kind(data)}"
        )
    for key in required:
        if key not in data:
            name = f"{where}.{key}" if where else key
            raise LowrankEdgeError(f"{path}: compression sidecar: missing field '{name}'")
    for key, (check, wanted) in fields.items():
        if key in data and not check(data[key]):
            name = f"{where}.{key}" if where else key
            raise LowrankEdgeError(
                f"{path}: compression sidecar: field '{name}' must be {wanted}, "
                f"got {_json_kind(data[key])}"
            )


def _json_kind(value: Any) -> str:
    """How a JSON value reads in an error: 'a string', 'a list', 'null', 'the number 1.5'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        text = repr(value)
        return f"the number {text if len(text) <= 20 else text[:17] + '...'}"
    return {dict: "an object", list: "a list", str: "a string"}.get(
        type(value), type(value).__name__
    )


def model_info(
    model,
    model_path: Path,
    out_dir: Path,
    dataset: Dataset | None,
    compression: dict[str, Any] | None,
) -> ModelInfo:
    """Everything the manifest says about the model (cost from `lowrank_edge.compress.cost`)."""
    from lowrank_edge.compress.cost import model_cost

    inp, out = io_facts(model, model_path, dataset)
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


def write_samples(
    path: Path, x: np.ndarray, y: np.ndarray, preprocessing: str = DEFAULT_PREPROCESSING
) -> SamplesInfo:
    """Save images and labels with `np.savez`: uint8 pixels when `preprocessing` turns them back
    into exactly `x` (`decode_samples`), else float32 values."""
    pixels = pixels_for(x, preprocessing)
    stored = pixels if pixels is not None else np.asarray(x, dtype=np.float32)
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
