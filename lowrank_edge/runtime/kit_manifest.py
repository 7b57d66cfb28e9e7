"""The latency kit manifest (`kit.json`, schema 1): micro-models of single layers, per rank.

A kit holds, for every distinct layer shape signature of a model, the layer alone ("dense",
rank None) and its factor pair at a grid of ranks, each exported to TFLite and ONNX float32 (and,
when built with more precisions, to the other export variants: `files["tflite:int8-full"]`), plus
optionally the whole model. `lowrank_edge.latency.kit` writes it; the latency table (TF-free)
reads it here and checks every file's SHA-256 on the bytes it loads.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.export.variants import VARIANTS
from lowrank_edge.fileio import read_json_file
from lowrank_edge.runtime.manifest import _Fields

KIT_SCHEMA = 1
KIT_NAME = "kit.json"
KIT_KIND = "lowrank-edge latency kit"
KIT_FORMATS = ("tflite", "onnx")
FORMAT_OF_BACKEND = {"litert": "tflite", "onnxruntime": "onnx"}
FLOAT32 = "float32"


def file_key(fmt: str, precision: str = FLOAT32) -> str:
    """The key of a micro-model file in `KitEntry.files`: `tflite` (float32, as kits always
    had) or `tflite:int8-full`."""
    return fmt if precision == FLOAT32 else f"{fmt}:{precision}"


def split_key(key: str) -> tuple[str, str]:
    """(format, precision) of a `file_key`: the inverse of `file_key`."""
    fmt, _, precision = key.partition(":")
    return fmt, precision or FLOAT32


def backend_precisions(backend: str) -> tuple[str, ...]:
    """The precisions (export variants) a runtime's format comes in, float32 first."""
    return VARIANTS[FORMAT_OF_BACKEND[backend]]


def kit_precisions(kit: Kit) -> tuple[str, ...]:
    """Every precision some entry of `kit` has a file in, float32 first."""
    present = {key for entry in kit.entries for key in entry.files}
    return tuple(dict.fromkeys(split_key(key)[1] for key in KIT_FILE_KEYS if key in present))


KIT_FILE_KEYS = tuple(file_key(fmt, p) for fmt in KIT_FORMATS for p in VARIANTS[fmt])
LAYER, MODEL = "layer", "model"
MODEL_PREFIX = "model:"


def model_entry_key(model_name: str) -> str:
    """The key of a whole-model entry, e.g. `model:mini_resnet`."""
    return f"{MODEL_PREFIX}{model_name}"


@dataclass(frozen=True)
class KitFile:
    """One exported micro-model file: plain name inside the kit folder, size and checksum."""

    file: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class KitEntry:
    """One micro-model: a layer signature `key` at `rank` (None: dense), or the whole model."""

    key: str
    rank: int | None
    kind: str
    input_shape: tuple[int | None, ...]
    files: dict[str, KitFile]
    parity: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """`key @ dense` or `key @ r8`, for messages and progress lines."""
        return f"{self.key} @ {'dense' if self.rank is None else f'r{self.rank}'}"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields (what `kit_from_dict` reads back)."""
        return {
            "key": self.key,
            "rank": self.rank,
            "kind": self.kind,
            "input_shape": list(self.input_shape),
            "files": {fmt: vars(f).copy() for fmt, f in self.files.items()},
            "parity": self.parity,
        }


@dataclass(frozen=True)
class Kit:
    """A loaded kit: entries in file order, signature facts, source model and provenance."""

    entries: tuple[KitEntry, ...]
    signatures: dict[str, dict[str, Any]]
    source: dict[str, Any]
    provenance: dict[str, Any]
    path: Path | None = None

    @property
    def folder(self) -> Path:
        """The folder holding `kit.json` and the micro-model files."""
        if self.path is None:
            raise LowrankEdgeError("this kit is not on disk")
        return self.path.parent

    def to_dict(self) -> dict[str, Any]:
        """The `kit.json` content."""
        return {
            "schema": KIT_SCHEMA,
            "kind": KIT_KIND,
            "source": self.source,
            "provenance": self.provenance,
            "signatures": self.signatures,
            "entries": [entry.to_dict() for entry in self.entries],
        }


def load_kit(path_or_dir: str | os.PathLike) -> Kit:
    """Read and validate `kit.json` (or the one in a folder); errors name the file and field."""
    path = Path(path_or_dir)
    if path.is_dir() or path.suffix != ".json":
        path = path / KIT_NAME
    if not path.is_file():
        raise LowrankEdgeError(f"{path}: latency kit not found (make one with latency-kit)")
    return kit_from_dict(read_json_file(path, "latency kit"), path)


def kit_from_dict(data: Any, path: Path | None = None) -> Kit:
    """Build a `Kit` from parsed JSON, validating every field against schema 1."""
    root = _Fields(data, "", str(path) if path is not None else KIT_NAME)
    if root.get("kind", str) != KIT_KIND or root.get("schema", int) != KIT_SCHEMA:
        raise LowrankEdgeError(
            f"{root.source}: not a schema-{KIT_SCHEMA} latency kit (kind {data.get('kind')!r}, "
            f"schema {data.get('schema')!r}); rebuild it with latency-kit"
        )
    entries = tuple(_entry(item) for item in root.items("entries"))
    labels = [entry.label for entry in entries]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise LowrankEdgeError(f"{root.source}: entries repeat: {', '.join(repeated)}")
    signatures = root.get("signatures", dict)
    missing = sorted({e.key for e in entries if e.kind == LAYER} - set(signatures))
    if missing:
        raise LowrankEdgeError(f"{root.source}: entries name unknown signatures: {missing}")
    return Kit(
        entries=entries,
        signatures=signatures,
        source=root.get("source", dict),
        provenance=root.get("provenance", dict),
        path=path,
    )


def _entry(f: _Fields) -> KitEntry:
    kind = f.get("kind", str)
    if kind not in (LAYER, MODEL):
        raise f.error("kind", f"must be {LAYER!r} or {MODEL!r}, got {kind!r}")
    rank = f.get("rank", int, nullable=True)
    if rank is not None and (rank < 1 or kind == MODEL):
        raise f.error("rank", f"must be null or a positive integer for a {kind}, got {rank}")
    files_field = f.sub("files")
    assert files_field is not None
    files = {}
    for key in KIT_FILE_KEYS:
        if key in files_field.data:
            one = files_field.sub(key)
            assert one is not None
            files[key] = KitFile(one.file_name("file"), one.sha256("sha256"), one.get("bytes", int))
    if not any(fmt in files for fmt in KIT_FORMATS):
        raise f.error("files", f"must list at least one of {', '.join(KIT_FORMATS)}")
    return KitEntry(
        key=f.get("key", str),
        rank=rank,
        kind=kind,
        input_shape=f.shape("input_shape"),
        files=files,
        parity=f.get("parity", dict),
    )


def kit_file_path(kit: Kit, entry: KitEntry, fmt: str) -> Path:
    """Where `entry`'s `fmt` file lives; refused when it resolves outside the kit folder."""
    if fmt not in entry.files:
        raise LowrankEdgeError(f"{kit.path}: entry {entry.label} has no {fmt} file")
    name = entry.files[fmt].file
    path = kit.folder / name
    try:
        inside = kit.folder.resolve() in path.resolve().parents
    except (OSError, RuntimeError, ValueError):
        inside = False
    if not inside:
        raise LowrankEdgeError(
            f"{kit.path}: entry {entry.label}: file {name!r} is not inside the kit folder; "
            "refusing to use it"
        )
    return path


def read_kit_file(kit: Kit, entry: KitEntry, fmt: str) -> bytes:
    """The bytes of `entry`'s `fmt` file, read once and checked against the kit's SHA-256."""
    path = kit_file_path(kit, entry, fmt)
    try:
        content = path.read_bytes()
    except OSError as error:
        raise LowrankEdgeError(
            f"{kit.path}: entry {entry.label}: cannot read {path} ({error})"
        ) from error
    actual = hashlib.sha256(content).hexdigest()
    if actual != entry.files[fmt].sha256:
        raise LowrankEdgeError(
            f"{kit.path}: entry {entry.label}: SHA-256 mismatch for {path}: kit says "
            f"{entry.files[fmt].sha256}, file has {actual}; rebuild the kit"
        )
    return content
