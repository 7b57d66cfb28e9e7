"""Load and save `.keras` files safely: safe_mode=True on load, atomic writes on save."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.fileio import atomic_path


def load_model(path: str | os.PathLike):
    """Load a `.keras` model with safe_mode=True; one clear error for a missing or corrupt file."""
    import keras

    path = Path(path)
    if not path.is_file():
        raise LowrankEdgeError(f"{path}: model file not found")
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        raise LowrankEdgeError(f"{path}: not a Keras v3 .keras archive (a zip file)")
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for a damaged archive
        first_line = (
            str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        )
        raise LowrankEdgeError(f"{path}: could not load the model: {first_line}") from error


def save_model(model, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Save `model` for inference to `path` (.keras) atomically; refuse to replace unless asked.

    The optimizer state is left out (a compiled Keras model would save Adam's moments too,
    which triples the file and makes "model size" meaningless).
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise LowrankEdgeError(f"{path}: model files must end in .keras")
    with atomic_path(path, overwrite=overwrite) as tmp:
        inference_copy(model).save(tmp)
    return path


def inference_copy(model):
    """An uncompiled copy of `model` with the same weights (the model itself if uncompiled)."""
    if getattr(model, "optimizer", None) is None:
        return model
    # from_config, not clone_model: Keras 3 clone_model compiles the clone like its source.
    copy = model.__class__.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def sidecar_path(model_path: str | os.PathLike) -> Path:
    """Where the compression facts of `<stem>.keras` live: `<stem>.compression.json`."""
    model_path = Path(model_path)
    return model_path.with_name(f"{model_path.stem}.compression.json")
