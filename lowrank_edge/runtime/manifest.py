"""The export manifest (`manifest.json`, schema 1): what an export folder holds and how to check it.

The export step writes it and every reader (benchmarks, a bare device) loads it through the same
dataclasses, so writer and reader cannot drift. TF-free: numpy and the stdlib only.

Fields added to schema 1 later are optional on read, so older manifests still load: an
artifact's `test_accuracy` (accuracy on the whole test split) and `calibration_images` are None
in a manifest without them, its `names_stripped` and `per_tensor_weights` False, and the
model input's `preprocessing` is `unit` (the [0, 1] scaling every earlier export used).
An artifact's gate fields (`passed`, `gate`, `gate_limits`, `gate_failure`) read as passed,
gate unknown, in a manifest without them; benches and recommendations skip an artifact marked
`"passed": false` (`Manifest.without_failed`, `failed_note`).
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.fileio import read_json_file, sha256_file
from lowrank_edge.runtime.preprocess import DEFAULT_PREPROCESSING, PREPROCESSINGS, preprocess

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
FORMATS = ("tflite", "onnx")
# The gate an artifact was judged by at export (`lowrank_edge.export.gates`).
GATE_PARITY = "parity"  # float variants: logits match Keras on the parity samples
GATE_TEST_ACCURACY = "test-accuracy"  # quantized: full-test accuracy drop vs float32 Keras
GATE_FLOAT_AGREEMENT = "float-agreement"  # quantized, no labelled data: argmax agreement
GATES = (GATE_PARITY, GATE_TEST_ACCURACY, GATE_FLOAT_AGREEMENT)


@dataclass(frozen=True)
class InputInfo:
    """The model's input: name, shape with None for the batch, dtype, value range, and how
    uint8 pixels become those values (a name in `lowrank_edge.runtime.preprocess`)."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"
    range: tuple[float, float] = (0.0, 1.0)
    preprocessing: str = DEFAULT_PREPROCESSING


@dataclass(frozen=True)
class OutputInfo:
    """The model's output (logits): name and shape with None for the batch."""

    name: str
    shape: tuple[int | None, ...]


@dataclass(frozen=True)
class SourceInfo:
    """The `.keras` file the artifacts came from (path relative to the manifest folder)."""

    path: str
    sha256: str


@dataclass(frozen=True)
class ModelInfo:
    """Facts about the exported model: classes, I/O, size and cost, origin, compression."""

    name: str
    dataset: str | None
    num_classes: int
    labels: tuple[str, ...]
    input: InputInfo
    output: OutputInfo
    params: int
    trainable_params: int
    macs: int
    flops: int
    source: SourceInfo
    compression: dict[str, Any] | None = None


@dataclass(frozen=True)
class SamplesInfo:
    """Real test images and labels saved beside the artifacts (`np.savez`, keys x and y)."""

    file: str
    sha256: str
    count: int


@dataclass(frozen=True)
class TensorIO:
    """An artifact's input or output tensor: name, dtype and, for integer I/O, scale/zero point."""

    name: str
    dtype: str
    scale: float | None = None
    zero_point: int | None = None

    @property
    def quantized(self) -> bool:
        """True when values cross this tensor as integers (real = (q - zero_point) * scale)."""
        return self.scale is not None and self.dtype in ("int8", "uint8", "int16")


@dataclass(frozen=True)
class Parity:
    """How an artifact's logits compare with Keras on real test samples (`tolerance`: the limits
    applied to these figures, empty when the gate is the test accuracy; an infinite difference,
    from NaN or infinite logits, is null in the file)."""

    samples: int
    max_abs_diff: float
    mean_abs_diff: float
    argmax_agreement: float
    accuracy: float | None
    keras_accuracy: float | None
    passed: bool
    tolerance: dict[str, float]


@dataclass(frozen=True)
class AccuracyInfo:
    """An artifact's accuracy on the dataset's whole test split, measured in its own runtime at
    export time, beside the Keras model's on the same images (`correct` of `images` right)."""

    images: int
    correct: int
    accuracy: float
    keras_correct: int
    keras_accuracy: float


@dataclass(frozen=True)
class ArtifactInfo:
    """One exported file (e.g. id `tflite-int8-full`), its checksum, its parity figures and its
    accuracy on the whole test split (None without a dataset, or in an older manifest).

    `names_stripped`: the file was written without tensor names, subgraph name, description and
    signature defs (`export --strip-names`; its I/O tensors' names are then '').
    `passed`: whether it met its export gate (`gate`, with `gate_limits`; None: not checked);
    `gate_failure` says why not. Benches and recommendations skip a failed one."""

    id: str
    format: str
    variant: str
    file: str
    bytes: int
    sha256: str
    input: TensorIO
    output: TensorIO
    parity: Parity | None = None
    test_accuracy: AccuracyInfo | None = None
    calibration_images: int | None = None  # training images that set int8 ranges (calibrated)
    names_stripped: bool = False
    per_tensor_weights: bool = False  # TFLite int8: one weight scale per tensor, not per channel
    passed: bool = True
    gate: str | None = None
    gate_limits: dict[str, float] = field(default_factory=dict)
    gate_failure: str | None = None


@dataclass(frozen=True)
class Provenance:
    """When and with which versions the export was made (None: package not installed)."""

    created: str
    lowrank_edge: str | None
    tensorflow: str | None
    keras: str | None
    tf2onnx: str | None
    onnx: str | None
    onnxruntime: str | None
    ai_edge_litert: str | None
    python: str | None


@dataclass(frozen=True)
class Manifest:
    """A loaded or freshly written manifest; `path` is the manifest file (None if not on disk)."""

    model: ModelInfo
    samples: SamplesInfo | None
    artifacts: tuple[ArtifactInfo, ...]
    provenance: Provenance
    schema: int = SCHEMA_VERSION
    path: Path | None = field(default=None, compare=False)

    @property
    def folder(self) -> Path:
        """The export folder the manifest's file names are relative to."""
        if self.path is None:
            raise LowrankEdgeError("this manifest has not been written to a folder yet")
        return self.path.parent

    @property
    def failed(self) -> tuple[ArtifactInfo, ...]:
        """The artifacts marked `"passed": false` at export (kept in the folder, not to use)."""
        return tuple(a for a in self.artifacts if not a.passed)

    def without_failed(self) -> Manifest:
        """This manifest with only the artifacts that passed their export gate."""
        return replace(self, artifacts=tuple(a for a in self.artifacts if a.passed))

    def artifact(self, artifact_id: str) -> ArtifactInfo:
        """The artifact with this id; a clear error listing the ids there are."""
        for artifact in self.artifacts:
            if artifact.id == artifact_id:
                return artifact
        known = ", ".join(a.id for a in self.artifacts) or "none"
        raise LowrankEdgeError(f"{self._where()}: no artifact '{artifact_id}' (it has: {known})")

    def artifact_path(self, artifact: ArtifactInfo | str) -> Path:
        """Where the artifact's file lives (in the manifest's folder; never leads outside it)."""
        if isinstance(artifact, str):
            artifact = self.artifact(artifact)
        index = next((i for i, a in enumerate(self.artifacts) if a == artifact), None)
        entry = f"artifacts[{index}].file" if index is not None else "artifact file"
        return self._inside(artifact.file, f"{entry} (artifact '{artifact.id}')")

    def samples_path(self) -> Path:
        """Where the samples file lives (in the manifest's folder; never leads outside it)."""
        if self.samples is None:
            raise LowrankEdgeError(
                f"{self._where()}: has no samples (it was exported without a dataset)"
            )
        return self._inside(self.samples.file, "samples.file")

    def check_paths(self) -> None:
        """Raise if any artifact or samples path leads outside the manifest's folder."""
        for artifact in self.artifacts:
            self.artifact_path(artifact)
        if self.samples is not None:
            self.samples_path()

    def _inside(self, name: str, entry: str) -> Path:
        """`folder / name`, refused when `name` is absolute, climbs with `..`, or is (or passes
        through) a symlink that resolves outside the folder."""
        folder = self.folder
        parts = Path(name).parts
        if not name or Path(name).is_absolute() or ".." in parts or "\\" in name or "\0" in name:
            raise LowrankEdgeError(
                f"{self._where()}: {entry} {name!r} must be a plain file name in the export "
                "folder; refusing to use it"
            )
        path = folder / name
        try:
            target, root = path.resolve(), folder.resolve()
        except (OSError, RuntimeError, ValueError) as error:  # a symlink loop, unencodable name
            raise LowrankEdgeError(
                f"{self._where()}: {entry} {name!r} cannot be resolved ({error})"
            ) from error
        if root not in target.parents:
            raise LowrankEdgeError(
                f"{self._where()}: {entry} {name!r} resolves to {target}, which is not inside the "
                f"export folder {root} (a symlink leading out of it); refusing to use it"
            )
        return path

    def load_samples(self, verify: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Real test images as float32 in the input range, labels as int64 (checksum verified)."""
        path = self.samples_path()
        if not path.is_file():
            raise LowrankEdgeError(f"{self._where()}: samples file {path} is missing")
        if verify:
            _check_sha256(path, self.samples.sha256, f"samples file {path}")
        try:
            with np.load(path, allow_pickle=False) as data:
                x, y = data["x"], data["y"]
        except (OSError, ValueError, KeyError) as error:
            raise LowrankEdgeError(
                f"{path}: not a samples file with arrays x and y ({error})"
            ) from error
        expected = tuple(self.model.input.shape[1:])
        if x.ndim != len(expected) + 1 or tuple(x.shape[1:]) != expected:
            raise LowrankEdgeError(f"{path}: x has shape {x.shape}, expected (N, *{expected})")
        if len(x) != self.samples.count or len(y) != len(x):
            raise LowrankEdgeError(
                f"{path}: holds {len(x)} images and {len(y)} labels, "
                f"manifest says {self.samples.count}"
            )
        return decode_samples(x, self.model.input.preprocessing), y.astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data in the schema-1 layout."""
        return {
            "schema": self.schema,
            "model": asdict(self.model),
            "samples": asdict(self.samples) if self.samples is not None else None,
            "artifacts": [_artifact_dict(a) for a in self.artifacts],
            "provenance": asdict(self.provenance),
        }

    def _where(self) -> str:
        return str(self.path) if self.path is not None else "manifest"


def _artifact_dict(artifact: ArtifactInfo) -> dict[str, Any]:
    """An artifact as JSON data; an infinite logit difference (NaN or infinite logits, which an
    artifact marked failed may have) is written as null, which JSON can hold."""
    data = asdict(artifact)
    parity = data.get("parity")
    for key in ("max_abs_diff", "mean_abs_diff"):
        if parity is not None and not math.isfinite(parity[key]):
            parity[key] = None
    return data


def failed_note(where: str, failed: list[tuple[str, str | None]]) -> str:
    """One line naming the artifacts of `where` skipped because export marked them failed;
    `failed` holds (id, gate) pairs."""
    names = ", ".join(f"{name} ({gate or 'gate'})" for name, gate in failed)
    return f'{where}: skipped {names}: marked "passed": false at export (failed its gate)'


def decode_samples(x: np.ndarray, preprocessing: str = DEFAULT_PREPROCESSING) -> np.ndarray:
    """Stored sample images as float32 model inputs: uint8 pixels through `preprocessing`
    (numpy only, as on a bare device), floats as they are."""
    if x.dtype == np.uint8:
        return preprocess(x, preprocessing)
    return x.astype(np.float32, copy=False)


def load_manifest(path_or_dir: str | os.PathLike) -> Manifest:
    """Read and validate `manifest.json` (or the one in a folder); errors name file and field."""
    path = Path(path_or_dir)
    if path.is_dir() or path.suffix != ".json":
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise LowrankEdgeError(f"{path}: manifest not found (export the model first)")
    manifest = manifest_from_dict(read_json_file(path, "manifest"), path)
    manifest.check_paths()
    return manifest


def manifest_from_dict(data: Any, path: Path | None = None) -> Manifest:
    """Build a `Manifest` from parsed JSON, validating every field against schema 1."""
    root = _Fields(data, "", str(path) if path is not None else "manifest")
    schema = root.get("schema", int)
    if schema != SCHEMA_VERSION:
        raise LowrankEdgeError(
            f"{root.source}: schema {schema} is not supported (this lowrank-edge reads schema "
            f"{SCHEMA_VERSION}); re-export the model with this version"
        )
    samples = root.sub("samples", nullable=True)
    artifacts = tuple(_artifact(item) for item in root.items("artifacts"))
    ids = [a.id for a in artifacts]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise LowrankEdgeError(f"{root.source}: artifact ids repeat: {', '.join(duplicates)}")
    return Manifest(
        schema=schema,
        model=_model(root.sub("model")),
        samples=None
        if samples is None
        else SamplesInfo(
            file=samples.file_name("file"),
            sha256=samples.sha256("sha256"),
            count=samples.get("count", int),
        ),
        artifacts=artifacts,
        provenance=_provenance(root.sub("provenance")),
        path=path,
    )


def verify_artifact(manifest: Manifest, artifact: ArtifactInfo | str) -> Path:
    """Check the artifact's file exists and its SHA-256 matches the manifest; return its path.

    The file can change after this check: to run an artifact, load the bytes `read_artifact`
    returns (as `open_artifact` does), not the path.
    """
    artifact, path = _existing_artifact(manifest, artifact)
    _check_sha256(path, artifact.sha256, f"artifact '{artifact.id}' ({path})")
    return path


def read_artifact(manifest: Manifest, artifact: ArtifactInfo | str) -> bytes:
    """The artifact's bytes, read once and checked against the manifest's SHA-256.

    A runtime built from these bytes runs exactly what was checked, whatever happens to the
    file afterwards.
    """
    artifact, path = _existing_artifact(manifest, artifact)
    try:
        content = path.read_bytes()
    except OSError as error:
        raise LowrankEdgeError(f"artifact '{artifact.id}': cannot read {path} ({error})") from error
    actual = hashlib.sha256(content).hexdigest()
    _compare_sha256(actual, artifact.sha256, f"artifact '{artifact.id}' ({path})")
    return content


def _existing_artifact(
    manifest: Manifest, artifact: ArtifactInfo | str
) -> tuple[ArtifactInfo, Path]:
    if isinstance(artifact, str):
        artifact = manifest.artifact(artifact)
    path = manifest.artifact_path(artifact)
    if not path.is_file():
        raise LowrankEdgeError(
            f"artifact '{artifact.id}': file {path} is missing (listed in {manifest.path})"
        )
    return artifact, path


def _check_sha256(path: Path, expected: str, what: str) -> None:
    _compare_sha256(sha256_file(path), expected, what)


def _compare_sha256(actual: str, expected: str, what: str) -> None:
    if actual != expected:
        raise LowrankEdgeError(
            f"{what}: SHA-256 mismatch: manifest says {expected}, file has {actual}; "
            "the file was modified or damaged - re-export it"
        )


def _model(f: _Fields) -> ModelInfo:
    inp, out, source = f.sub("input"), f.sub("output"), f.sub("source")
    return ModelInfo(
        name=f.get("name", str),
        dataset=f.get("dataset", str, nullable=True),
        num_classes=f.get("num_classes", int),
        labels=tuple(f.list_of("labels", str)),
        input=InputInfo(
            name=inp.get("name", str),
            shape=inp.shape("shape"),
            dtype=inp.get("dtype", str),
            range=inp.pair("range"),
            preprocessing=_preprocessing(inp),
        ),
        output=OutputInfo(name=out.get("name", str), shape=out.shape("shape")),
        params=f.get("params", int),
        trainable_params=f.get("trainable_params", int),
        macs=f.get("macs", int),
        flops=f.get("flops", int),
        source=SourceInfo(path=source.get("path", str), sha256=source.sha256("sha256")),
        compression=f.get("compression", dict, nullable=True),
    )


def _preprocessing(f: _Fields) -> str:
    name = f.get_later("preprocessing", str, DEFAULT_PREPROCESSING)
    if name not in PREPROCESSINGS:
        raise f.error("preprocessing", f"must be one of {', '.join(PREPROCESSINGS)}, got {name!r}")
    return name


def _tensor_io(f: _Fields) -> TensorIO:
    return TensorIO(
        name=f.get("name", str),
        dtype=f.get("dtype", str),
        scale=f.get("scale", float, nullable=True),
        zero_point=f.get("zero_point", int, nullable=True),
    )


def _artifact(f: _Fields) -> ArtifactInfo:
    fmt = f.get("format", str)
    if fmt not in FORMATS:
        raise f.error("format", f"must be one of {', '.join(FORMATS)}, got {fmt!r}")
    parity = f.sub("parity", nullable=True)
    test_accuracy = f.sub("test_accuracy", nullable=True, optional=True)
    return ArtifactInfo(
        id=f.get("id", str),
        format=fmt,
        variant=f.get("variant", str),
        file=f.file_name("file"),
        bytes=f.get("bytes", int),
        sha256=f.sha256("sha256"),
        input=_tensor_io(f.sub("input")),
        output=_tensor_io(f.sub("output")),
        parity=None if parity is None else _parity(parity),
        test_accuracy=None if test_accuracy is None else _accuracy(test_accuracy),
        calibration_images=f.get_later("calibration_images", int, None, nullable=True),
        names_stripped=f.get_later("names_stripped", bool, False),
        per_tensor_weights=f.get_later("per_tensor_weights", bool, False),
        passed=f.get_later("passed", bool, True),
        gate=_gate(f),
        gate_limits=_limits(f, "gate_limits", f.get_later("gate_limits", dict, {})),
        gate_failure=f.get_later("gate_failure", str, None, nullable=True),
    )


def _gate(f: _Fields) -> str | None:
    gate = f.get_later("gate", str, None, nullable=True)
    if gate is not None and gate not in GATES:
        raise f.error("gate", f"must be one of {', '.join(GATES)} or null, got {gate!r}")
    return gate


def _limits(f: _Fields, key: str, limits: dict) -> dict[str, float]:
    """A dict of named numeric limits, each a finite number (errors name `key.<name>`)."""
    for name, value in limits.items():
        if not (_is_number(value) and _is_finite(value)):
            raise f.error(f"{key}.{name}", f"must be a finite number, got {_kind(value)}")
    return {name: float(value) for name, value in limits.items()}


def _parity(f: _Fields) -> Parity:
    tolerance = _limits(f, "tolerance", f.get("tolerance", dict))
    return Parity(
        samples=f.get("samples", int),
        max_abs_diff=_difference(f, "max_abs_diff"),
        mean_abs_diff=_difference(f, "mean_abs_diff"),
        argmax_agreement=f.get("argmax_agreement", float),
        accuracy=f.get("accuracy", float, nullable=True),
        keras_accuracy=f.get("keras_accuracy", float, nullable=True),
        passed=f.get("passed", bool),
        tolerance=tolerance,
    )


def _difference(f: _Fields, key: str) -> float:
    """A logit difference; null stands for an infinite one (NaN or infinite logits)."""
    value = f.get(key, float, nullable=True)
    return math.inf if value is None else value


def _accuracy(f: _Fields) -> AccuracyInfo:
    images = f.get("images", int)
    if images < 1:
        raise f.error("images", f"must be at least 1, got {images}")
    counts = {}
    for key in ("correct", "keras_correct"):
        counts[key] = f.get(key, int)
        if not 0 <= counts[key] <= images:
            raise f.error(key, f"must be between 0 and images ({images}), got {counts[key]}")
    fractions = {}
    for key in ("accuracy", "keras_accuracy"):
        fractions[key] = f.get(key, float)
        if not 0.0 <= fractions[key] <= 1.0:
            raise f.error(key, f"must be between 0 and 1, got {fractions[key]!r}")
    return AccuracyInfo(images=images, **counts, **fractions)


def _provenance(f: _Fields) -> Provenance:
    names = ("lowrank_edge", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime")
    versions = {name: f.get(name, str, nullable=True) for name in names}
    return Provenance(
        created=f.get("created", str),
        ai_edge_litert=f.get("ai_edge_litert", str, nullable=True),
        python=f.get("python", str, nullable=True),
        **versions,
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_finite(value: int | float) -> bool:
    """False for inf/nan and for integers too large to be a float."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    dict: "an object",
    list: "a list",
}


class _Fields:
    """Typed access to one JSON object of the manifest; errors name the file and dotted field."""

    def __init__(self, data: Any, where: str, source: str):
        self.where, self.source = where, source
        if not isinstance(data, dict):
            label = f"field '{where}'" if where else "top level"
            raise LowrankEdgeError(f"{source}: {label} must be an object, got {_kind(data)}")
        self.data = data

    def error(self, key: str, problem: str) -> LowrankEdgeError:
        return LowrankEdgeError(f"{self.source}: field '{self._name(key)}' {problem}")

    def get(self, key: str, kind: type, *, nullable: bool = False) -> Any:
        if key not in self.data:
            raise LowrankEdgeError(f"{self.source}: missing field '{self._name(key)}'")
        value = self.data[key]
        if value is None and nullable:
            return None
        if kind is float and _is_number(value):
            if not _is_finite(value):
                raise self.error(key, f"must be a finite number, got {_kind(value)}")
            return float(value)
        if kind is int and isinstance(value, bool):
            raise self.error(key, "must be an integer, got a boolean")
        if not isinstance(value, kind):
            raise self.error(key, f"must be {_TYPE_NAMES[kind]}, got {_kind(value)}")
        return value

    def get_later(self, key: str, kind: type, default: Any, *, nullable: bool = False) -> Any:
        """`get` for a field added to the schema later: `default` when an older file lacks it."""
        return self.get(key, kind, nullable=nullable) if key in self.data else default

    def sub(self, key: str, *, nullable: bool = False, optional: bool = False) -> _Fields | None:
        """The object under `key`; None for null (`nullable`) or, if `optional`, a missing key."""
        if optional and key not in self.data:
            return None
        value = self.get(key, dict, nullable=nullable)
        return None if value is None else _Fields(value, self._name(key), self.source)

    def items(self, key: str) -> list[_Fields]:
        values = self.get(key, list)
        return [_Fields(v, f"{self._name(key)}[{i}]", self.source) for i, v in enumerate(values)]

    def list_of(self, key: str, kind: type) -> list[Any]:
        values = self.get(key, list)
        for i, value in enumerate(values):
            if not isinstance(value, kind):
                raise self.error(f"{key}[{i}]", f"must be {_TYPE_NAMES[kind]}, got {_kind(value)}")
        return values

    def shape(self, key: str) -> tuple[int | None, ...]:
        values = self.get(key, list)
        for i, value in enumerate(values):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise self.error(f"{key}[{i}]", f"must be an integer or null, got {_kind(value)}")
        return tuple(values)

    def pair(self, key: str) -> tuple[float, float]:
        values = self.get(key, list)
        if len(values) != 2 or not all(_is_number(v) for v in values):
            raise self.error(key, f"must be [low, high] numbers, got {values!r}")
        return float(values[0]), float(values[1])

    def sha256(self, key: str) -> str:
        value = self.get(key, str)
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            raise self.error(key, f"must be 64 lowercase hex digits, got {value!r}")
        return value

    def file_name(self, key: str) -> str:
        value = self.get(key, str)
        if value in ("", ".", "..") or Path(value).name != value or "\\" in value or "\0" in value:
            raise self.error(key, f"must be a plain file name in the export folder, got {value!r}")
        return value

    def _name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
