"""What `lowrank-edge recommend` reads: bench records and the manifests they point to.

Records are read with `read_results` (as `bench-report` does) and grouped by condition (device,
run, backend, threads, batch); each successful record becomes a `Candidate` carrying its p50,
per-repeat p50s, file size and every accuracy figure its manifest holds (`accuracy_figures`).
TF-free: the stdlib, numpy (through the manifest reader) and this package.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lowrank_edge.benchmark.cpu_features import feature_list, precision_advice
from lowrank_edge.benchmark.recommend import (
    ARTIFACT_PARITY,
    ARTIFACT_TEST,
    KERAS_PARITY,
    MODEL_TEST,
    REFERENCE_VARIANT,
    Accuracy,
    Candidate,
    Condition,
)
from lowrank_edge.benchmark.results.provenance import COMMAND_NAME
from lowrank_edge.benchmark.results.storage import read_results
from lowrank_edge.benchmark.timing.ratios import RatioSummary
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.fileio import read_json_file
from lowrank_edge.runtime.manifest import MANIFEST_NAME, failed_note, load_manifest

# Where a full-test-set accuracy may sit: on an artifact entry (this artifact run on the whole test
# split) or on the manifest's `model` (the Keras model). Several spellings, the first found wins.
# The exporter's `test_accuracy` record ({images, correct, accuracy, ...}) first.
TEST_ACCURACY_KEYS = (("test_accuracy", "accuracy"), ("accuracy", "test"), ("accuracy_test",))
SAMPLE_COUNT_KEYS = ("images", "samples", "test_samples", "count")


@dataclass(frozen=True)
class Filters:
    """Only the records of this backend / thread count / batch size (None: any)."""

    backend: str | None = None
    threads: int | None = None
    batch: int | None = None

    def matches(self, record: dict) -> bool:
        return (
            (self.backend is None or record.get("backend") == self.backend)
            and (self.threads is None or record.get("threads") == self.threads)
            and (self.batch is None or record.get("batch") == self.batch)
        )

    def given(self) -> tuple[tuple[str, int | str], ...]:
        """(name, value) of the filters that are set."""
        items = (("backend", self.backend), ("threads", self.threads), ("batch", self.batch))
        return tuple((name, value) for name, value in items if value is not None)


@dataclass(frozen=True)
class Export:
    """One export folder as found: its manifest path and raw JSON, or why it was not found."""

    manifest: Path | None
    data: dict | None
    problem: str | None = None


# --- the accuracy accessor -------------------------------------------------------------------


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise LowrankEdgeError(f"{where} must be an accuracy between 0 and 1, got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise LowrankEdgeError(f"{where} must be an accuracy between 0 and 1, got {value!r}")
    return float(value)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def full_test_accuracy(entry: dict, where: str) -> tuple[float, int | None] | None:
    """(accuracy, images) of a full-test-set figure on a manifest object, e.g. `accuracy.test`
    on an artifact entry; None when the object has none (`TEST_ACCURACY_KEYS`)."""
    for keys in TEST_ACCURACY_KEYS:
        holder: Any = entry
        for key in keys[:-1]:
            holder = holder.get(key) if isinstance(holder, dict) else None
        if not isinstance(holder, dict) or holder.get(keys[-1]) is None:
            continue
        value = _number(holder[keys[-1]], f"{where}.{'.'.join(keys)}")
        count_holder = holder if len(keys) > 1 else entry
        names = SAMPLE_COUNT_KEYS if len(keys) > 1 else ("test_samples",)
        count = next((_count(count_holder.get(n)) for n in names if n in count_holder), None)
        return value, count
    return None


def accuracy_figures(data: dict, artifact: str | None, variant: str, where: str = "manifest"):
    """Every accuracy figure the raw manifest `data` holds for this artifact, best source first.

    `artifact` is an artifact id (the keras backend records the source `.keras` path instead:
    only the Keras model's figures apply). Model-level figures (the Keras model) stand for an
    artifact only when it is float32, which matches Keras within its parity tolerance; a
    quantised artifact is judged on its own figures only.
    """
    entries = data.get("artifacts") if isinstance(data.get("artifacts"), list) else []
    index, entry = next(
        ((i, e) for i, e in enumerate(entries) if isinstance(e, dict) and e.get("id") == artifact),
        (None, None),
    )
    figures: list[Accuracy] = []
    if entry is not None:
        found = full_test_accuracy(entry, f"{where}: artifacts[{index}]")
        if found is not None:
            figures.append(Accuracy(found[0], ARTIFACT_TEST, found[1]))
    model_level = variant == REFERENCE_VARIANT
    model = data.get("model") if isinstance(data.get("model"), dict) else {}
    if model_level:
        found = full_test_accuracy(model, f"{where}: model")
        if found is not None:
            figures.append(Accuracy(found[0], MODEL_TEST, found[1]))
    parity = entry.get("parity") if entry is not None else None
    if isinstance(parity, dict):
        value = _number(parity.get("accuracy"), f"{where}: artifacts[{index}].parity.accuracy")
        if value is not None:
            figures.append(Accuracy(value, ARTIFACT_PARITY, _count(parity.get("samples"))))
    if model_level:
        for i, other in enumerate(entries):  # the same samples for every artifact of the folder
            parity = other.get("parity") if isinstance(other, dict) else None
            if isinstance(parity, dict) and parity.get("keras_accuracy") is not None:
                field = f"{where}: artifacts[{i}].parity.keras_accuracy"
                value = _number(parity["keras_accuracy"], field)
                figures.append(Accuracy(value, KERAS_PARITY, _count(parity.get("samples"))))
                break
    return tuple(figures)


# --- bench folders ---------------------------------------------------------------------------


def read_bench(folders: Sequence[str | os.PathLike]) -> list[tuple[Path, dict]]:
    """(bench folder, record) for every record of every folder (a results.jsonl path works too)."""
    if not folders:
        raise LowrankEdgeError("give at least one bench result folder")
    pairs = []
    for folder in folders:
        folder = Path(folder)
        home = folder if folder.is_dir() else folder.parent
        pairs += [(home, record) for record in read_results(folder)]
    return pairs


def _bench_cwd(folder: Path) -> Path | None:
    """The working folder `bench` ran in (command.json's `cwd`), where relative model dirs start."""
    path = folder / COMMAND_NAME
    if not path.is_file():
        return None
    try:
        data = read_json_file(path, "command.json")
    except LowrankEdgeError:
        return None
    cwd = data.get("cwd") if isinstance(data, dict) else None
    return Path(cwd) if isinstance(cwd, str) and cwd else None


def find_export(model_dir: str, bench_folder: Path) -> Export:
    """Load the manifest of a recorded model folder: as recorded (absolute, or relative to the
    current folder), else relative to the folder `bench` ran in, else to the bench folder."""
    recorded = Path(model_dir)
    tried = [recorded]
    if not recorded.is_absolute():
        cwd = _bench_cwd(bench_folder)
        tried += [cwd / recorded] if cwd is not None else []
        tried.append(bench_folder / recorded)
    for folder in dict.fromkeys(tried):
        if (folder / MANIFEST_NAME).is_file():
            manifest = load_manifest(folder)  # validated: a damaged manifest is an error
            return Export(manifest.path, read_json_file(manifest.path, "manifest"))
    looked = ", ".join(str(f / MANIFEST_NAME) for f in dict.fromkeys(tried))
    return Export(None, None, f"manifest not found (looked at {looked})")


def _machine(record: dict) -> str | None:
    system = record.get("system") if isinstance(record.get("system"), dict) else {}
    parts = [system.get("host") or record.get("host"), system.get("cpu_model")]
    if system.get("cpu_count"):
        parts.append(f"{system['cpu_count']} CPUs")
    text = ", ".join(str(p) for p in parts if p)
    return text or None


def _cpu(record: dict) -> dict:
    """The condition's CPU features and advice, where the record has them (older ones do not)."""
    system = record.get("system") if isinstance(record.get("system"), dict) else {}
    features = system.get("cpu_features")
    if not isinstance(features, dict):
        return {}
    return {
        "cpu_features": feature_list(features),
        "cpu_advice": tuple(precision_advice(features)),
    }


def _condition(record: dict) -> Condition:
    return Condition(
        device=str(record.get("device")),
        backend=str(record["backend"]),
        threads=int(record["threads"]),
        batch=int(record["batch"]),
        run_id=record.get("run_id"),
        machine=_machine(record),
        **_cpu(record),
    )


def _candidate(record: dict, export: Export) -> Candidate:
    artifact, variant = record.get("artifact"), str(record["variant"])
    label = f"{record['model']} {artifact if record['backend'] != 'keras' else 'keras'}"
    file = path = size = None
    accuracies: tuple[Accuracy, ...] = ()
    note = export.problem
    if export.data is not None and export.manifest is not None:
        folder = export.manifest.parent
        entry = next((a for a in export.data["artifacts"] if a.get("id") == artifact), None)
        if entry is not None:
            file, size = entry["file"], entry["bytes"]
            path = str(folder / file)
        elif record["backend"] == "keras" and artifact:
            source = Path(os.path.normpath(folder / artifact))  # an absolute one stays
            file, path = Path(artifact).name, str(source)
            size = source.stat().st_size if source.is_file() else None
        else:
            note = f"artifact '{artifact}' is not in {export.manifest} (re-exported since?)"
        where = str(export.manifest)
        accuracies = accuracy_figures(export.data, artifact, variant, where)
        if not accuracies and note is None:
            note = f"{export.manifest} holds no accuracy figure (exported without a dataset?)"
    latency = record.get("latency") or {}
    repeats = record.get("p50_repeats_ms") or []
    is_reference = bool(record.get("is_baseline")) and variant == REFERENCE_VARIANT
    return Candidate(
        label=label,
        model=str(record["model"]),
        model_dir=str(record.get("model_dir")),
        artifact=artifact,
        variant=variant,
        file=file,
        path=path,
        manifest=str(export.manifest) if export.manifest is not None else None,
        bytes=size,
        p50_ms=float(latency["p50_ms"]),
        p50_repeats_ms=tuple(float(v) for v in repeats),
        paired=_paired(record),
        accuracies=accuracies,
        is_reference=is_reference,
        note=note,
    )


def _paired(record: dict) -> RatioSummary | None:
    """The record's paired speedup over the original float32: `reference_spread`, or in a record
    from before every variant shared the rounds, a float32 record's own-group speedup."""
    spread = record.get("reference_spread")
    if spread is None and record.get("variant") == REFERENCE_VARIANT:
        spread = record.get("speedup_spread")
    return RatioSummary.from_dict(spread) if isinstance(spread, dict) else None


def _failed_entry(record: dict, export: Export) -> dict | None:
    """The manifest entry of the record's artifact when it is marked `"passed": false` (an old
    manifest without the field counts as passed), else None."""
    if export.data is None or record["backend"] == "keras":
        return None
    artifact = record.get("artifact")
    entry = next((a for a in export.data["artifacts"] if a.get("id") == artifact), None)
    return entry if entry is not None and entry.get("passed", True) is False else None


def _describe(conditions: Sequence[Condition]) -> str:
    seen = dict.fromkeys(f"{c.device}: {c.backend} t{c.threads} b{c.batch}" for c in conditions)
    return ", ".join(seen) or "none"


def group_candidates(
    pairs: Sequence[tuple[Path, dict]], filters: Filters = Filters()
) -> list[tuple[Condition, list[Candidate], list[str]]]:
    """(condition, candidates, notes) per condition of the records that match `filters`.

    Failed records, artifacts their manifest marks `"passed": false` (failed their export
    gate) and repeats of an artifact already seen are left out, with a note.
    """
    exports: dict[tuple[Path, str], Export] = {}
    groups: dict[tuple, tuple[Condition, list[Candidate], list[str], set]] = {}
    everything = [_condition(record) for _, record in pairs]
    for (folder, record), condition in zip(pairs, everything, strict=True):
        if not filters.matches(record):
            continue
        key = (condition.device, condition.run_id, condition.backend, condition.threads,
               condition.batch)  # fmt: skip
        _, candidates, notes, seen = groups.setdefault(key, (condition, [], [], set()))
        label = f"{record['model']} {record.get('artifact') or record['variant']}"
        if record.get("status") != "ok" or not (record.get("latency") or {}).get("p50_ms"):
            notes.append(f"{label}: failed in the bench ({record.get('error') or 'no latency'})")
            continue
        identity = (record.get("model_dir"), record.get("artifact"), record["variant"])
        if identity in seen:
            notes.append(f"{label}: measured twice in this run; the first record is used")
            continue
        seen.add(identity)
        model_dir = str(record.get("model_dir"))
        if (folder, model_dir) not in exports:
            exports[(folder, model_dir)] = find_export(model_dir, folder)
        export = exports[(folder, model_dir)]
        failed = _failed_entry(record, export)
        if failed is not None:
            notes.append(failed_note(str(record["model"]), [(failed["id"], failed.get("gate"))]))
            continue
        candidates.append(_candidate(record, export))
    if not groups:
        if not filters.given():
            raise LowrankEdgeError("the bench folders hold no records")
        wanted = " ".join(f"--{k} {v}" for k, v in filters.given())
        raise LowrankEdgeError(
            f"no bench record matches {wanted}; the folders hold: {_describe(everything)}"
        )
    return [(condition, cands, notes) for condition, cands, notes, _ in groups.values()]
