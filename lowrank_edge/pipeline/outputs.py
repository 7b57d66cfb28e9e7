"""Reading what a `lowrank-edge pipeline` (or `compress`) run left in its output folder: the
files, each compressed model's per-layer ranks (its `.compression.json` sidecar) and the
accuracies in `results.json`. JSON only, no TensorFlow: for comparing two runs' folders."""

from __future__ import annotations

import json
from pathlib import Path


def output_files(folder: Path) -> set[str]:
    """Every file under `folder`, as paths relative to it."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def rank_plans(folder: Path) -> dict[str, dict[str, int]]:
    """{model: {layer: rank kept}} from every `.compression.json` sidecar in `folder`."""
    return {
        sidecar.name.removesuffix(".compression.json"): {
            layer["name"]: layer["rank_kept"] for layer in json.loads(sidecar.read_text())["layers"]
        }
        for sidecar in sorted(folder.glob("*.compression.json"))
    }


def accuracies(folder: Path) -> dict[str, dict[str, float]]:
    """{model: its accuracy record (val, test, ...)} from `folder/results.json`."""
    models = json.loads((folder / "results.json").read_text())["models"]
    return {m["name"]: m["accuracy"] for m in models}
