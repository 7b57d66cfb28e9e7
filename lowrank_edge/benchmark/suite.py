"""The models of a sweep: export folders, their manifests (or why they failed to load), labels."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lowrank_edge.benchmark.timing.interleave import describe_error
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.runtime.manifest import (
    MANIFEST_NAME,
    ArtifactInfo,
    Manifest,
    failed_note,
    load_manifest,
)


@dataclass(frozen=True)
class BenchModel:
    """One model given on the command line: a label, its export folder, its manifest or error."""

    label: str
    folder: Path
    manifest: Manifest | None  # without the artifacts marked failed at export
    error: str | None = None
    failed: tuple[ArtifactInfo, ...] = ()  # artifacts marked "passed": false, not timed

    @property
    def macs(self) -> int | None:
        """MACs per sample from the manifest (None if the manifest did not load)."""
        return self.manifest.model.macs if self.manifest is not None else None


def _folder_of(path: Path) -> Path:
    return path.parent if path.name == MANIFEST_NAME or path.suffix == ".json" else path


def model_labels(folders: Sequence[Path]) -> list[str]:
    """Short unique labels: the folder name, prefixed by parents until the labels differ."""
    parts = [Path(os.path.abspath(folder)).parts for folder in folders]
    depth = 1
    while True:
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels) or depth >= max(len(p) for p in parts):
            return labels
        depth += 1


def load_models(paths: Sequence[str | os.PathLike]) -> list[BenchModel]:
    """Load every manifest; one that fails becomes a BenchModel with its error (never raises).
    Artifacts marked `"passed": false` at export are set aside in `failed`, not timed."""
    folders = [_folder_of(Path(path)) for path in paths]
    models = []
    for label, path, folder in zip(model_labels(folders), paths, folders, strict=True):
        try:
            manifest = load_manifest(path)
        except LowrankEdgeError as error:
            models.append(BenchModel(label, folder, None, describe_error(error)))
            continue
        models.append(
            BenchModel(label, manifest.folder, manifest.without_failed(), failed=manifest.failed)
        )
    return models


def failed_notes(models: Sequence[BenchModel]) -> list[str]:
    """One line per model with artifacts skipped because export marked them failed."""
    return [
        failed_note(model.label, [(a.id, a.gate) for a in model.failed])
        for model in models
        if model.failed
    ]


def baseline_index(models: Sequence[BenchModel], baseline: str | os.PathLike | None) -> int:
    """Index of the baseline model: the one given by path (or label), else the first."""
    if baseline is None:
        return 0
    wanted = Path(os.path.abspath(_folder_of(Path(baseline))))
    for index, model in enumerate(models):
        if Path(os.path.abspath(model.folder)) == wanted or model.label == str(baseline):
            return index
    listed = ", ".join(str(m.folder) for m in models)
    raise LowrankEdgeError(f"--baseline {baseline} is not one of the benchmarked models ({listed})")


def keras_source(manifest: Manifest) -> Path:
    """The `.keras` file named in the manifest: relative to its folder, else to the cwd."""
    source = Path(manifest.model.source.path)
    candidates = (
        [source] if source.is_absolute() else [manifest.folder / source, Path.cwd() / source]
    )
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise LowrankEdgeError(
        f"{manifest.path}: the source model {source} was not found (looked at {tried})"
    )
