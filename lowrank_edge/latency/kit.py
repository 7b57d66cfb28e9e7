"""Build a latency kit: micro-models of every factorable layer's shape signature, exported.

For each distinct signature (graph order): the layer alone and its factor pair at every kit
rank, each as TFLite float32 and ONNX float32, parity-checked against Keras, and in every other
precision asked for (float16, int8-dynamic, int8-full, int8 QDQ: each format its own); plus the
whole model, so a table can tell the layers' share of its latency. Everything is built in a staging
folder beside the kit and moved into place with `kit.json` last; a kit is replaced only with
`overwrite`, and a non-empty folder that holds no kit never.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import keras

from lowrank_edge.compress.analyse import ModelAnalysis, analyse_model
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.fileio import sha256_file, write_json_atomic
from lowrank_edge.latency.layer_signature import LayerSignature, call_signature, layer_calls_by_path
from lowrank_edge.latency.micro_export import export_micro_model
from lowrank_edge.latency.micro_models import dense_micro_model, kit_ranks, pair_micro_model
from lowrank_edge.logs import Log, log_stderr
from lowrank_edge.runtime.kit_manifest import (
    FLOAT32,
    KIT_NAME,
    LAYER,
    MODEL,
    Kit,
    KitEntry,
    load_kit,
    model_entry_key,
)
from lowrank_edge.runtime.quiet import captured_output

PlanItem = tuple[LayerSignature, keras.layers.Layer, list[str]]


def plan_kit(analysis: ModelAnalysis) -> list[PlanItem]:
    """Distinct signatures in graph order, each with its first layer and every layer path."""
    plan: dict[str, PlanItem] = {}
    for path, calls in layer_calls_by_path(analysis).items():
        for call in calls:
            signature = call_signature(call)
            if signature.key not in plan:
                plan[signature.key] = (signature, call.layer, [])
            if path not in plan[signature.key][2]:
                plan[signature.key][2].append(path)
    return list(plan.values())


def check_kit_target(out_dir: Path, overwrite: bool) -> None:
    """Refuse an existing kit without `overwrite`, and any non-empty folder that is not a kit."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise LowrankEdgeError(f"{out_dir} exists and is not a folder; choose another --out")
    if not any(out_dir.iterdir()):
        return
    if not (out_dir / KIT_NAME).is_file():
        raise LowrankEdgeError(
            f"{out_dir} is not empty and holds no {KIT_NAME}; refusing to replace it"
        )
    if not overwrite:
        raise LowrankEdgeError(
            f"{out_dir / KIT_NAME} already exists; pass --overwrite to replace it"
        )


def build_kit(
    model_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    opset: int = 17,
    parity_samples: int = 8,
    whole_model: bool = True,
    precisions: Sequence[str] = (FLOAT32,),
    log: Log = log_stderr,
) -> Kit:
    """Build the latency kit of the `.keras` model at `model_path` into `out_dir`."""
    from lowrank_edge.model.saving import load_model

    model_path, out_dir = Path(model_path), Path(out_dir)
    check_kit_target(out_dir, overwrite)
    with captured_output():  # importing TensorFlow prints absl notices
        model = load_model(model_path)
    source = {"model": str(model_path), "sha256": sha256_file(model_path), "name": model.name}
    return build_kit_from_model(
        model,
        out_dir,
        source=source,
        overwrite=overwrite,
        opset=opset,
        parity_samples=parity_samples,
        whole_model=whole_model,
        precisions=precisions,
        log=log,
    )


def build_kit_from_model(
    model: keras.Model,
    out_dir: str | os.PathLike,
    *,
    source: dict | None = None,
    overwrite: bool = False,
    opset: int = 17,
    parity_samples: int = 8,
    whole_model: bool = True,
    precisions: Sequence[str] = (FLOAT32,),
    log: Log = log_stderr,
) -> Kit:
    """Build the latency kit of an in-memory model into `out_dir` (see the module docstring);
    `precisions`: the export variants to write besides float32 (each format takes its own)."""
    from lowrank_edge.export.facts import provenance

    out_dir = Path(out_dir)
    check_kit_target(out_dir, overwrite)
    plan = plan_kit(analyse_model(model))
    if not plan:
        raise LowrankEdgeError(f"model '{model.name}' has no factorable Conv2D/Dense layer")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.kit-", dir=out_dir.parent))
    try:
        entries = _layer_entries(plan, staging, opset, parity_samples, precisions, log)
        if whole_model:
            entries.append(_model_entry(model, staging, opset, parity_samples, precisions, log))
        kit = Kit(
            entries=tuple(entries),
            signatures={sig.key: {**sig.to_dict(), "layers": paths} for sig, _, paths in plan},
            source=source or {"model": None, "name": model.name},
            provenance=asdict(provenance()),
        )
        write_json_atomic(staging / KIT_NAME, kit.to_dict())
        _install(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"[latency-kit] wrote {out_dir / KIT_NAME} ({len(entries)} micro-models)")
    return load_kit(out_dir)


def _layer_entries(
    plan: list[PlanItem],
    staging: Path,
    opset: int,
    parity_samples: int,
    precisions: Sequence[str],
    log: Log,
) -> list[KitEntry]:
    entries = []
    for index, (signature, layer, paths) in enumerate(plan):
        input_shape = (None, *signature.input_shape)
        for rank in [None, *kit_ranks(signature.matrix_shape)]:
            if rank is None:
                micro, stem = dense_micro_model(layer, signature), f"s{index:03d}-dense"
            else:
                micro, stem = pair_micro_model(layer, signature, rank), f"s{index:03d}-r{rank}"
            entry = KitEntry(signature.key, rank, LAYER, input_shape, {})
            files, parity = export_micro_model(
                micro, input_shape, stem, staging, entry.label, opset, parity_samples, precisions
            )
            entries.append(KitEntry(signature.key, rank, LAYER, input_shape, files, parity))
        ranks = ", ".join(str(r) for r in kit_ranks(signature.matrix_shape)) or "none"
        log(f"[latency-kit] {', '.join(paths)}: {signature.key} (dense; ranks {ranks})")
    return entries


def _model_entry(
    model: keras.Model,
    staging: Path,
    opset: int,
    parity_samples: int,
    precisions: Sequence[str],
    log: Log,
) -> KitEntry:
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise LowrankEdgeError(
            f"model '{model.name}': the whole-model entry needs one input and one output "
            f"(it has {len(model.inputs)} and {len(model.outputs)}); build without it"
        )
    input_shape = (None, *(int(d) for d in model.inputs[0].shape[1:]))
    key = model_entry_key(model.name)
    entry = KitEntry(key, None, MODEL, input_shape, {})
    files, parity = export_micro_model(
        model, input_shape, "model", staging, entry.label, opset, parity_samples, precisions
    )
    log(f"[latency-kit] whole model {model.name}: ok")
    return KitEntry(key, None, MODEL, input_shape, files, parity)


def _install(staging: Path, out_dir: Path) -> None:
    """Put the staged kit at `out_dir`; an old kit is moved aside first, then deleted."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(out_dir, old)
    os.rename(staging, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
