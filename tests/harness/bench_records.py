"""Synthetic bench folders (no TensorFlow, no timing): chosen latencies, accuracies and sizes.

- `FakeArtifact` / `write_export(folder, name, artifacts)`: an export folder written by hand (the
  `harness.manifest_files` manifest with these artifacts: placeholder files of the given size,
  parity accuracies, optionally the whole-test-split `test_accuracy` the exporter records).
- `measurement(p50s_ms)`: a `Measurement` whose per-repeat p50s are exactly `p50s_ms`.
- `Group` / `write_bench(folder, device, exports, groups)`: records made by the real
  `build_records` (first model the baseline) and written by the real `JsonlWriter`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from harness.manifest_files import make_manifest
from lowrank_edge.benchmark.results.records import GroupContext, build_records
from lowrank_edge.benchmark.results.storage import RESULTS_NAME, JsonlWriter
from lowrank_edge.benchmark.suite import BenchModel
from lowrank_edge.benchmark.timing.interleave import Measurement
from lowrank_edge.runtime.manifest import MANIFEST_NAME, AccuracyInfo, ArtifactInfo, load_manifest

FORMAT_OF = {"litert": "tflite", "onnxruntime": "onnx"}
PARITY_SAMPLES = 512


@dataclass(frozen=True)
class FakeArtifact:
    """One artifact to list: format/variant (its id is `format-variant`), size and accuracies."""

    fmt: str
    variant: str
    nbytes: int
    accuracy: float | None  # parity accuracy (None: exported without labels)
    test_accuracy: float | None = None  # written as the entry's `test_accuracy` when given

    @property
    def id(self) -> str:
        return f"{self.fmt}-{self.variant}"


def write_export(
    folder: Path, name: str, artifacts: Sequence[FakeArtifact], keras_accuracy: float = 0.99
) -> Path:
    """Write `folder` with placeholder artifact files and a manifest listing them; the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    base = make_manifest()
    infos = []
    for fake in artifacts:
        file = f"{name}-{fake.variant}.{fake.fmt}"
        data = (name + fake.id).encode().ljust(fake.nbytes, b"\0")
        (folder / file).write_bytes(data)
        parity = replace(
            base.artifacts[0].parity,
            samples=PARITY_SAMPLES,
            accuracy=fake.accuracy,
            keras_accuracy=keras_accuracy if fake.accuracy is not None else None,
        )
        infos.append(
            ArtifactInfo(
                id=fake.id,
                format=fake.fmt,
                variant=fake.variant,
                file=file,
                bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                input=base.artifacts[0].input,
                output=base.artifacts[0].output,
                parity=parity if fake.accuracy is not None else None,
                test_accuracy=test_accuracy(fake.test_accuracy),
            )
        )
    manifest = replace(
        base, model=replace(base.model, name=name), artifacts=tuple(infos), samples=None
    )
    data = manifest.to_dict()
    (folder / MANIFEST_NAME).write_text(json.dumps(data, indent=2))
    return folder


def test_accuracy(accuracy: float | None, images: int = 10000) -> AccuracyInfo | None:
    """The manifest's whole-test-split record for an artifact scoring `accuracy`."""
    if accuracy is None:
        return None
    correct = round(accuracy * images)
    return AccuracyInfo(images, correct, correct / images, correct, correct / images)


def measurement(p50s_ms: Sequence[float], rounds: int = 2) -> Measurement:
    """Every round of repeat i times p50s_ms[i] three times (so that repeat's p50 is exactly it)."""
    return Measurement(
        samples_ns=[[[round(p50 * 1e6)] * 3 for _ in range(rounds)] for p50 in p50s_ms]
    )


def _measured(p50s_ms: Sequence[float] | None) -> Measurement:
    if p50s_ms is None:
        return Measurement(error="RuntimeError: boom")
    return measurement(p50s_ms)


@dataclass(frozen=True)
class Group:
    """One bench group: backend, variant, threads, batch and each model's per-repeat p50s (ms);
    a model missing from `times` is not in the group, None marks a failed measurement."""

    backend: str
    variant: str
    times: dict[str, Sequence[float] | None]
    threads: int = 1
    batch: int = 1


def write_bench(
    folder: Path,
    device: str,
    exports: dict[str, Path],
    groups: Sequence[Group],
    run_id: str = "run0",
    paired: bool = True,
) -> Path:
    """results.jsonl in `folder` with the records of every group; the first export is the
    baseline. As in the sweep, every group is paired with the baseline's float32 group of the
    same backend/threads/batch (as if timed in the same rounds); `paired=False` writes records
    as older benches did, each variant on its own. Returns the results file."""
    models = [BenchModel(label, path, load_manifest(path)) for label, path in exports.items()]
    run = {
        "run_id": run_id,
        "device": device,
        "host": f"{device}-host",
        "system": {"host": f"{device}-host", "cpu_model": "Test CPU", "cpu_count": 4},
    }
    references = {
        (g.backend, g.threads, g.batch): _measured(g.times[models[0].label])
        for g in groups
        if g.variant == "float32" and paired
    }
    folder.mkdir(parents=True, exist_ok=True)
    with JsonlWriter(folder / RESULTS_NAME) as writer:
        for group in groups:
            context = GroupContext(group.backend, group.variant, group.threads, group.batch, run)
            chosen = [m for m in models if m.label in group.times]
            artifacts = [f"{FORMAT_OF[group.backend]}-{group.variant}" for _ in chosen]
            measured = [_measured(group.times[m.label]) for m in chosen]
            reference = references.get((group.backend, group.threads, group.batch))
            for record in build_records(
                context, chosen, artifacts, measured, baseline=0, reference=reference
            ):
                writer.write(record)
    return folder / RESULTS_NAME
