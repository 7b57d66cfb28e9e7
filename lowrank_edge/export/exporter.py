"""Export a `.keras` model to TFLite/ONNX artifacts, check each one's parity, write the manifest.

With a dataset, every artifact is also run on the whole test split in its own runtime and its
accuracy recorded beside the Keras model's on the same images (`ArtifactInfo.test_accuracy`).

Every artifact is judged by the gate of its kind of variant (`gates`): numeric parity for
float32/float16, the full-test accuracy drop (`max_quant_drop`) or, without labelled data,
agreement with the float model for quantized ones. One that fails is written and marked
`"passed": false` in the manifest, or with `strict` left out; the others are written either way.

Everything is built in a staging folder inside the export folder; only when every artifact
converted are the files moved into place, the manifest last. A failed conversion therefore
leaves no half-written artifact, and an existing export is replaced only with `overwrite`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from lowrank_edge.data.dataset import Dataset
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.export.facts import (
    io_facts,
    model_info,
    pick_representative,
    pick_test_samples,
    provenance,
    read_sidecar,
    write_samples,
)
from lowrank_edge.export.gates import Verdict, check_max_quant_drop, judge, parity_tolerance
from lowrank_edge.export.parity import (
    ParityError,
    compare_logits,
    describe,
    describe_accuracy,
    keras_logits,
    measure_accuracy,
    predicted_classes,
    runner_logits,
)
from lowrank_edge.export.strip import strip_tflite_names
from lowrank_edge.export.variants import (
    CALIBRATED_VARIANTS,
    DEFAULT_MAX_QUANT_DROP,
    FORMATS,
    INT8_IO_TYPES,
    VARIANTS,
    artifact_file,
    artifact_id,
)
from lowrank_edge.fileio import check_can_write, sha256_file, write_json_atomic
from lowrank_edge.logs import Log
from lowrank_edge.model.agreement import check_model_data
from lowrank_edge.runtime.manifest import (
    MANIFEST_NAME,
    ArtifactInfo,
    InputInfo,
    Manifest,
    load_manifest,
)
from lowrank_edge.runtime.quiet import captured_output
from lowrank_edge.runtime.runner import open_litert, open_onnxruntime

SAMPLES_FILE = "samples.npz"
SAMPLES_COUNT = 256  # real test images saved for device benchmarks
REPRESENTATIVE_COUNT = 200  # training images for int8 calibration (TFLite int8-full, ONNX int8-qdq)


@dataclass(frozen=True)
class PlannedArtifact:
    """One artifact to produce: format, variant, manifest id and file name."""

    format: str
    variant: str
    id: str
    file: str


@dataclass(frozen=True)
class _ParityInputs:
    x: np.ndarray
    labels: np.ndarray | None
    reference: np.ndarray


@dataclass(frozen=True)
class _TestSet:
    """The whole test split and the Keras model's predicted classes on it."""

    x: np.ndarray
    labels: np.ndarray
    keras_predicted: np.ndarray


def plan_artifacts(
    stem: str,
    formats: Sequence[str],
    tflite_variants: Sequence[str],
    onnx_variants: Sequence[str] = ("float32",),
) -> list[PlannedArtifact]:
    """The artifacts the options ask for, validated, duplicates dropped, in a stable order."""
    formats = list(dict.fromkeys(formats))
    chosen = {
        "tflite": list(dict.fromkeys(tflite_variants)),
        "onnx": list(dict.fromkeys(onnx_variants)),
    }
    for fmt in formats:
        if fmt not in FORMATS:
            raise LowrankEdgeError(
                f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}"
            )
    for fmt, label in (("tflite", "TFLite"), ("onnx", "ONNX")):
        for variant in chosen[fmt]:
            if variant not in VARIANTS[fmt]:
                raise LowrankEdgeError(
                    f"unknown {label} variant {variant!r}; choose from {', '.join(VARIANTS[fmt])}"
                )
        if fmt in formats and not chosen[fmt]:
            raise LowrankEdgeError(f"choose at least one {label} variant")
    if not formats:
        raise LowrankEdgeError("choose at least one export format (tflite, onnx)")
    plan = []
    for fmt in formats:
        for variant in chosen[fmt]:
            plan.append(
                PlannedArtifact(
                    fmt, variant, artifact_id(fmt, variant), artifact_file(stem, fmt, variant)
                )
            )
    return plan


def export_model(
    model_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    formats: Sequence[str] = ("tflite", "onnx"),
    tflite_variants: Sequence[str] = ("float32",),
    onnx_variants: Sequence[str] = ("float32",),
    dataset: Dataset | Callable[[Any], Dataset] | None = None,
    parity_samples: int = 512,
    opset: int = 17,
    int8_io: bool | str = False,
    calibration_images: int | None = None,
    strip_names: bool = False,
    per_tensor_weights: bool = False,
    max_quant_drop: float = DEFAULT_MAX_QUANT_DROP,
    strict: bool = False,
    overwrite: bool = False,
    verify: bool = True,
    verbose: bool = False,
    log: Log = print,
) -> Manifest:
    """Export `model_path` into `out_dir`: artifacts, `samples.npz` and `manifest.json`.

    Every artifact runs in its runtime on `parity_samples` real test images (random inputs
    without a dataset) and, unless `verify` is off, is judged by its gate (`gates.judge`): a
    quantized one with a dataset may lose at most `max_quant_drop` points of full-test accuracy.
    One that fails is written and marked `"passed": false`; with `strict` it is left out and,
    after the others are written, ParityError names it. With a dataset, each artifact's accuracy
    on the whole test split is recorded (whether or not `verify` is on). `int8_io` gives the
    int8-full variant integer I/O: True or "uint8", or "int8". `calibration_images` training
    images set the int8 ranges of the calibrated variants (TFLite int8-full, ONNX int8-qdq);
    None: `REPRESENTATIVE_COUNT`, or the whole training split when it is smaller.
    `strip_names` drops the TFLite artifacts' tensor names, subgraph name, description and
    signature defs (`strip.strip_tflite_names`) before they are checked, so the parity and
    accuracy figures are the stripped file's.
    `per_tensor_weights` gives the TFLite int8 variants one weight scale per tensor.
    `dataset` may be a function of the loaded model (reading the data for its input shape),
    called after the cheap checks and the model load, so neither is done twice.
    """
    model_path, out_dir = Path(model_path), Path(out_dir)
    plan = plan_artifacts(
        model_path.stem,
        _as_list(formats),
        _as_list(tflite_variants),
        _as_list(onnx_variants),
    )
    settings = ConversionSettings(opset, _int8_io_type(int8_io, plan), strip_names,
                                  per_tensor_weights)  # fmt: skip
    settings.check_applies(plan)
    max_quant_drop = check_max_quant_drop(max_quant_drop)
    _check_options(plan, out_dir, dataset, parity_samples, opset, overwrite, verbose)

    with captured_output(enabled=not verbose):  # importing TensorFlow prints absl notices
        from lowrank_edge.model.saving import load_model, sidecar_path

        model = load_model(model_path)
    if callable(dataset):
        dataset = dataset(model)
    inp, out = io_facts(model, model_path, dataset)
    if dataset is not None:
        check_model_data(model_path, inp.shape[1:], out.shape[1], dataset)
        if len(dataset.x_test) == 0:
            raise LowrankEdgeError(f"dataset {dataset.name} has no test images")
    info = model_info(model, model_path, out_dir, dataset, read_sidecar(sidecar_path(model_path)))
    parity_inputs = _parity_inputs(model, inp, dataset, parity_samples, log) if verify else None
    test_set = _test_set(model, dataset) if dataset is not None else None
    representative = None
    if dataset is not None:
        settings = replace(
            settings, calibration_images=_calibration_count(calibration_images, dataset)
        )
        representative = pick_representative(dataset, settings.calibration_images)

    created_out_dir = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out_dir))
    installed = False
    try:
        samples = None
        if dataset is not None:
            x_samples, y_samples = pick_test_samples(
                dataset, min(SAMPLES_COUNT, len(dataset.x_test))
            )
            samples = write_samples(
                staging / SAMPLES_FILE, x_samples, y_samples, dataset.preprocessing
            )
        converter = _Converter(model, model_path, inp, staging, representative, settings, verbose)
        artifacts = [
            _make_artifact(
                planned, converter, staging, parity_inputs, test_set, max_quant_drop, log
            )
            for planned in plan
        ]
        failed = [a for a in artifacts if not a.passed]
        kept = [a for a in artifacts if a.passed] if strict else artifacts
        if not kept:
            raise ParityError(
                f"{model_path}: every artifact failed its gate, nothing was written (--strict): "
                f"{_gate_failures(failed)}"
            )
        manifest = Manifest(
            model=info,
            samples=samples,
            artifacts=tuple(kept),
            provenance=provenance(),
            path=out_dir / MANIFEST_NAME,
        )
        _install(staging, out_dir, manifest)
        installed = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created_out_dir and not installed and not any(out_dir.iterdir()):
            out_dir.rmdir()  # a failed export leaves no trace
    log(f"[export] wrote {manifest.path} ({len(kept)} artifacts)")
    if failed and strict:
        raise ParityError(
            f"{model_path}: left out {len(failed)} artifact(s) that failed their gate (--strict), "
            f"wrote the {len(kept)} others: {_gate_failures(failed)}"
        )
    for artifact in failed:
        log(
            f"[export] warning: {artifact.id} failed its {artifact.gate} gate "
            f'({artifact.gate_failure}); written and marked "passed": false, so bench and '
            "recommend skip it (--strict leaves it out)"
        )
    return manifest


def _calibration_count(count: int | None, dataset: Dataset) -> int:
    """The number of calibration images: `count`, which the training split must supply, or by
    default `REPRESENTATIVE_COUNT` (all of a smaller split)."""
    if count is None:
        return min(REPRESENTATIVE_COUNT, len(dataset.x_train))
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise LowrankEdgeError(f"calibration images: expected a count >= 1, got {count!r}")
    if count > len(dataset.x_train):
        raise LowrankEdgeError(
            f"calibration images: {count} asked for, but {dataset.name}'s training split has "
            f"only {len(dataset.x_train)}"
        )
    return count


@dataclass(frozen=True)
class ConversionSettings:
    """The converter choices of one export beyond formats and variants."""

    opset: int = 17
    int8_io: str | None = None  # integer I/O of TFLite int8-full: "uint8", "int8" or None
    strip_names: bool = False  # TFLite files without names and signature defs
    per_tensor_weights: bool = False  # TFLite int8 variants: one weight scale per tensor
    calibration_images: int | None = None  # the calibrated variants' count (with a dataset)

    def check_applies(self, plan: Sequence[PlannedArtifact]) -> None:
        """Refuse a setting that no planned artifact would take."""
        from lowrank_edge.export.to_tflite import PER_TENSOR_VARIANTS

        if self.strip_names and not any(self.names_stripped(p) for p in plan):
            raise LowrankEdgeError(
                "stripping names (--strip-names) applies to TFLite artifacts only: add "
                "--format tflite"
            )
        if self.per_tensor_weights and not any(self.per_tensor(p) for p in plan):
            raise LowrankEdgeError(
                "per-tensor weights (--per-tensor-weights) apply to TFLite int8 variants only: add "
                f"--format tflite and --variant {' or '.join(PER_TENSOR_VARIANTS)}"
            )

    def calibrated_with(self, planned: PlannedArtifact) -> int | None:
        """The calibration images behind `planned` (calibrated variants only), else None."""
        return self.calibration_images if planned.variant in CALIBRATED_VARIANTS else None

    def names_stripped(self, planned: PlannedArtifact) -> bool:
        """Whether `planned`'s file loses its names (TFLite artifacts, with `strip_names`)."""
        return self.strip_names and planned.format == "tflite"

    def per_tensor(self, planned: PlannedArtifact) -> bool:
        """Whether `planned` gets per-tensor weight scales (TFLite int8 variants, if asked)."""
        from lowrank_edge.export.to_tflite import PER_TENSOR_VARIANTS

        return (
            self.per_tensor_weights
            and planned.format == "tflite"
            and planned.variant in PER_TENSOR_VARIANTS
        )


class _Converter:
    """Runs the converters with their chatter captured; the SavedModel is written once."""

    def __init__(self, model, model_path, inp, staging, representative, settings, verbose):
        self.model, self.model_path, self.input = model, model_path, inp
        self.staging, self.verbose = staging, verbose
        self.representative, self.settings = representative, settings
        self._saved_model: Path | None = None
        self._onnx_float32: bytes | None = None

    def convert(self, planned: PlannedArtifact) -> bytes:
        from lowrank_edge.export.to_tflite import convert_tflite, write_saved_model

        with captured_output(enabled=not self.verbose) as capture:
            try:
                if planned.format == "onnx":
                    return self._onnx(planned.variant)
                if self._saved_model is None:
                    self._saved_model = write_saved_model(
                        self.model, self.input.shape, self.staging / "saved_model"
                    )
                data = convert_tflite(
                    self._saved_model,
                    planned.variant,
                    self.representative,
                    self.settings.int8_io,
                    self.settings.per_tensor(planned),
                )
                return strip_tflite_names(data) if self.settings.names_stripped(planned) else data
            except LowrankEdgeError:
                raise
            except Exception as error:  # converters raise many types; report them as one line
                problem = error
        detail = f"\n{capture.tail()}" if capture.tail() else ""
        first = str(problem).strip().splitlines()[0] if str(problem).strip() else ""
        raise LowrankEdgeError(
            f"{self.model_path}: conversion to {planned.id} failed: "
            f"{type(problem).__name__}: {first}{detail}"
        ) from problem

    def _onnx(self, variant: str) -> bytes:
        """The float32 ONNX model (converted once), or an int8 variant quantized from it."""
        from lowrank_edge.export.quantize_onnx import quantize_onnx
        from lowrank_edge.export.to_onnx import convert_onnx

        if self._onnx_float32 is None:
            self._onnx_float32 = convert_onnx(self.model, self.input.shape, self.settings.opset)
        if variant == "float32":
            return self._onnx_float32
        return quantize_onnx(
            self._onnx_float32, variant, self.staging / f"onnx-{variant}", self.representative
        )


def _make_artifact(
    planned: PlannedArtifact,
    converter: _Converter,
    staging: Path,
    parity_inputs: _ParityInputs | None,
    test_set: _TestSet | None,
    max_quant_drop: float,
    log: Log,
) -> ArtifactInfo:
    """Convert, write into staging, load in the runtime, measure parity and accuracy on the
    whole test split, judge the variant's gate; the manifest entry."""
    data = converter.convert(planned)
    path = staging / planned.file
    path.write_bytes(data)
    opener = open_litert if planned.format == "tflite" else open_onnxruntime
    runner = opener(path)
    try:
        parity = None
        if parity_inputs is not None:
            parity = compare_logits(
                parity_inputs.reference,
                runner_logits(runner, parity_inputs.x),
                parity_inputs.labels,
                parity_tolerance(planned.variant, parity_inputs.labels is not None),
            )
        test_accuracy = None
        if test_set is not None:
            test_accuracy = measure_accuracy(
                runner_logits(runner, test_set.x), test_set.labels, test_set.keras_predicted
            )
        verdict = judge(planned.variant, parity, test_accuracy, max_quant_drop)
        artifact = ArtifactInfo(
            id=planned.id,
            format=planned.format,
            variant=planned.variant,
            file=planned.file,
            bytes=len(data),
            sha256=sha256_file(path),
            input=runner.input_io,
            output=runner.output_io,
            parity=parity,
            test_accuracy=test_accuracy,
            calibration_images=converter.settings.calibrated_with(planned),
            names_stripped=converter.settings.names_stripped(planned),
            per_tensor_weights=converter.settings.per_tensor(planned),
            passed=verdict.passed,
            gate=verdict.gate,
            gate_limits=verdict.limits,
            gate_failure=verdict.failure,
        )
    finally:
        runner.close()
    figures = f"; {describe(parity)}" if parity is not None else ""
    if test_accuracy is not None:
        figures += f"; {describe_accuracy(test_accuracy)}"
    notes = [
        ("names stripped", artifact.names_stripped),
        ("per-tensor", artifact.per_tensor_weights),
    ]
    stripped = "".join(f" ({text})" for text, on in notes if on)
    log(
        f"[export] {planned.id}: {planned.file}, {len(data):,} bytes{stripped}{figures} "
        f"-> {_verdict_word(verdict)}"
    )
    return artifact


def _verdict_word(verdict: Verdict) -> str:
    """`ok (test-accuracy gate)`, `FAILED (parity gate: ...)` or `not verified`, for the log."""
    if verdict.gate is None:
        return "not verified"
    if verdict.passed:
        return f"ok ({verdict.gate} gate)"
    return f"FAILED ({verdict.gate} gate: {verdict.failure})"


def _parity_inputs(
    model, inp: InputInfo, dataset: Dataset | None, count: int, log: Log
) -> _ParityInputs:
    """Real test images and labels (or seeded random inputs without a dataset) and Keras logits."""
    if dataset is not None:
        x, labels = pick_test_samples(dataset, min(count, len(dataset.x_test)))
        x = x.astype(np.float32)
    else:
        log("[export] no dataset: parity is checked on random inputs, without accuracy")
        low, high = inp.range
        rng = np.random.default_rng(0)
        x = rng.uniform(low, high, size=(count, *inp.shape[1:])).astype(np.float32)
        labels = None
    return _ParityInputs(x=x, labels=labels, reference=keras_logits(model, x))


def _test_set(model, dataset: Dataset) -> _TestSet:
    """The dataset's whole test split and the classes Keras predicts for it."""
    x = dataset.x_test.astype(np.float32, copy=False)
    return _TestSet(
        x=x,
        labels=np.asarray(dataset.y_test),
        keras_predicted=predicted_classes(keras_logits(model, x)),
    )


def _gate_failures(failed: Sequence[ArtifactInfo]) -> str:
    """`id (gate gate): why; ...` for the artifacts that failed their gate."""
    return "; ".join(f"{a.id} ({a.gate} gate): {a.gate_failure}" for a in failed)


def _check_options(
    plan: list[PlannedArtifact],
    out_dir: Path,
    dataset: Dataset | None,
    parity_samples: int,
    opset: int,
    overwrite: bool,
    verbose: bool,
) -> None:
    """Every cheap check before the model is loaded: options, dataset needs, existing files."""
    if (
        isinstance(parity_samples, bool)
        or not isinstance(parity_samples, int)
        or parity_samples < 1
    ):
        raise LowrankEdgeError(f"parity samples must be a positive integer, got {parity_samples!r}")
    calibrated = [p.variant for p in plan if p.variant in CALIBRATED_VARIANTS]
    if dataset is None and calibrated:
        raise LowrankEdgeError(
            f"the {calibrated[0]} variant needs a dataset for its representative (calibration) "
            "images: pass --data SPEC"
        )
    if any(p.format == "onnx" for p in plan):
        _check_opset(opset, verbose)
    outputs = [out_dir / MANIFEST_NAME, *(out_dir / p.file for p in plan)]
    if dataset is not None:
        outputs.append(out_dir / SAMPLES_FILE)
    for path in outputs:
        check_can_write(path, overwrite)


def _check_opset(opset: int, verbose: bool) -> None:
    """Refuse an opset tf2onnx cannot target before any work is done."""
    with captured_output(enabled=not verbose):  # importing tf2onnx imports TensorFlow
        import tf2onnx

        from lowrank_edge.export.to_onnx import supported_opsets

        opsets = supported_opsets()
    if isinstance(opset, bool) or not isinstance(opset, int) or opset not in opsets:
        raise LowrankEdgeError(
            f"ONNX opset {opset!r} is not supported by tf2onnx {tf2onnx.__version__} "
            f"(choose {opsets.start}..{opsets.stop - 1})"
        )


def _as_list(values: str | Sequence[str]) -> list[str]:
    """Accept one name or several (a lone string is one name, not its characters)."""
    return [values] if isinstance(values, str) else list(values)


def _int8_io_type(int8_io: bool | str | None, plan: list[PlannedArtifact]) -> str | None:
    if int8_io is None or int8_io is False:
        return None
    if not any(p.variant == "int8-full" for p in plan):
        raise LowrankEdgeError(
            "integer I/O (--int8-io) applies to the int8-full TFLite variant only: "
            "add --variant int8-full"
        )
    if int8_io is True:
        return "uint8"
    if int8_io in INT8_IO_TYPES:
        return int8_io
    raise LowrankEdgeError(
        f"int8 I/O type must be one of {', '.join(INT8_IO_TYPES)}, got {int8_io!r}"
    )


def _install(staging: Path, out_dir: Path, manifest: Manifest) -> None:
    """Move the staged files into place; the old manifest goes first and the new one last."""
    manifest_path = out_dir / MANIFEST_NAME
    new_files = [a.file for a in manifest.artifacts]
    if manifest.samples is not None:
        new_files.append(manifest.samples.file)
    old_files = _files_of_previous_export(manifest_path)
    manifest_path.unlink(missing_ok=True)  # no manifest points at half-replaced files
    for name in new_files:
        os.replace(staging / name, out_dir / name)
    for name in sorted(old_files - set(new_files)):
        (out_dir / name).unlink(missing_ok=True)
    write_json_atomic(manifest_path, manifest.to_dict(), overwrite=True)


def _files_of_previous_export(manifest_path: Path) -> set[str]:
    """Files listed by the manifest being replaced (none if it is absent or unreadable)."""
    if not manifest_path.exists():
        return set()
    try:
        previous = load_manifest(manifest_path)
    except LowrankEdgeError:
        return set()
    files = {a.file for a in previous.artifacts}
    if previous.samples is not None:
        files.add(previous.samples.file)
    return files
