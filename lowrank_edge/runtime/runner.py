"""Run an exported artifact on LiteRT or ONNX Runtime: float32 images in, float32 logits out.

One small `Runner` interface for both runtimes, used by the export parity check and the
benchmarks alike. TF-free: the runtime packages are imported only when a runner is opened.
Every open reads the model file once and builds the runtime from those bytes; `open_artifact`
checks them against the manifest's SHA-256 first, so what runs is exactly what was checked.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lowrank_edge.errors import LowrankEdgeError, MissingDependencyError
from lowrank_edge.runtime.manifest import ArtifactInfo, Manifest, TensorIO, read_artifact
from lowrank_edge.runtime.quantize import dequantize, quantize
from lowrank_edge.runtime.quiet import captured_output

_BENCH_EXTRA = "pip install 'lowrank-edge[bench]'"


class Runner(Protocol):
    """A loaded artifact: `predict` takes float32 (N, ...) images and returns float32 logits."""

    artifact: ArtifactInfo | None
    input_name: str

    def predict(self, x: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


def open_litert(
    path: str | os.PathLike,
    *,
    num_threads: int | None = None,
    use_xnnpack: bool = True,
    io: ArtifactInfo | None = None,
) -> LiteRTRunner:
    """Load a `.tflite` file in the LiteRT interpreter (XNNPACK on unless `use_xnnpack=False`).

    `io`, the artifact's manifest entry, is checked against the model's own I/O tensors.
    """
    path = _existing(path)
    return _litert_from_bytes(_read(path), path, num_threads, use_xnnpack, io)


def _litert_from_bytes(
    content: bytes,
    path: Path,
    num_threads: int | None,
    use_xnnpack: bool,
    io: ArtifactInfo | None,
) -> LiteRTRunner:
    """A LiteRT runner built from `content` (the bytes of `path`, named in errors)."""
    _check_threads("num_threads", num_threads)
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError as error:
        raise MissingDependencyError(
            f"the LiteRT runtime is not installed ({error}); run: pip install ai-edge-litert "
            f"(or {_BENCH_EXTRA})"
        ) from error
    resolver = (
        OpResolverType.AUTO if use_xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    with captured_output() as log:
        try:
            interpreter = Interpreter(
                model_content=content,
                num_threads=num_threads,
                experimental_op_resolver_type=resolver,
            )
            interpreter.allocate_tensors()
        except Exception as error:  # the interpreter raises ValueError/RuntimeError for bad files
            problem = error
        else:
            problem = None
    if problem is not None:
        raise LowrankEdgeError(
            f"{path}: LiteRT cannot load this model: {_first_line(problem)} {log.tail(3)}".strip()
        ) from problem
    return LiteRTRunner(interpreter, path, io)


def open_onnxruntime(
    path: str | os.PathLike,
    *,
    intra_op_threads: int | None = None,
    allow_spinning: bool = False,
    profile_prefix: str | None = None,
    io: ArtifactInfo | None = None,
) -> OnnxRuntimeRunner:
    """Load a `.onnx` file in ONNX Runtime (CPU, sequential, all graph optimisations).

    Inter-op threads are 1; idle threads do not spin unless `allow_spinning`. With
    `profile_prefix` the session profiles every run; `end_profiling()` returns the JSON file.
    """
    path = _existing(path)
    return _onnxruntime_from_bytes(
        _read(path), path, intra_op_threads, allow_spinning, profile_prefix, io
    )


def _onnxruntime_from_bytes(
    content: bytes,
    path: Path,
    intra_op_threads: int | None,
    allow_spinning: bool,
    profile_prefix: str | None,
    io: ArtifactInfo | None,
) -> OnnxRuntimeRunner:
    """An ONNX Runtime runner built from `content` (the bytes of `path`, named in errors)."""
    _check_threads("intra_op_threads", intra_op_threads)
    try:
        import onnxruntime as ort
    except ImportError as error:
        raise MissingDependencyError(
            f"ONNX Runtime is not installed ({error}); run: pip install onnxruntime "
            f"(or {_BENCH_EXTRA})"
        ) from error
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads or 0
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry(
        "session.intra_op.allow_spinning", "1" if allow_spinning else "0"
    )
    options.log_severity_level = 3  # errors only
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_prefix)
    try:
        session = ort.InferenceSession(content, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # ORT raises its own exception types for bad files
        raise LowrankEdgeError(
            f"{path}: ONNX Runtime cannot load this model: {_first_line(error)}"
        ) from error
    return OnnxRuntimeRunner(session, path, io, profiling=profile_prefix is not None)


def open_artifact(
    manifest: Manifest,
    artifact_id: str,
    *,
    threads: int | None = None,
    use_xnnpack: bool = True,
    allow_spinning: bool = False,
    profile_prefix: str | None = None,
) -> Runner:
    """Open one artifact of an export folder in its runtime.

    The file is read once, its bytes checked against the manifest's SHA-256 and the runtime
    built from those same bytes; every call checks again, so a file swapped between two opens
    is refused, never run.
    """
    artifact = manifest.artifact(artifact_id)
    if artifact.format not in ("tflite", "onnx"):
        raise LowrankEdgeError(f"artifact '{artifact.id}': unknown format {artifact.format!r}")
    if artifact.format == "tflite" and profile_prefix is not None:
        raise LowrankEdgeError(
            f"artifact '{artifact.id}': profiling is only available for ONNX Runtime artifacts"
        )
    content = read_artifact(manifest, artifact)
    path = manifest.artifact_path(artifact)
    if artifact.format == "tflite":
        return _litert_from_bytes(content, path, threads, use_xnnpack, artifact)
    return _onnxruntime_from_bytes(content, path, threads, allow_spinning, profile_prefix, artifact)


def open_model_bytes(
    content: bytes,
    path: str | os.PathLike,
    fmt: str,
    *,
    threads: int | None = None,
    use_xnnpack: bool = True,
    allow_spinning: bool = False,
) -> Runner:
    """Open already-verified model bytes (`fmt` "tflite" or "onnx"); `path` names them in errors.

    For files listed by something other than an export manifest (e.g. a latency kit) whose
    checksum the caller checked on exactly these bytes.
    """
    if fmt == "tflite":
        return _litert_from_bytes(content, Path(path), threads, use_xnnpack, None)
    if fmt == "onnx":
        return _onnxruntime_from_bytes(content, Path(path), threads, allow_spinning, None, None)
    raise LowrankEdgeError(f"{path}: unknown model format {fmt!r} (expected tflite or onnx)")


class _RunnerBase:
    """Shared checks: input shape, float conversion, integer I/O, context-manager support."""

    artifact: ArtifactInfo | None
    input_name: str
    input_io: TensorIO
    output_io: TensorIO
    path: Path
    _feature_shape: tuple[int | None, ...]

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        expected = self._feature_shape
        if x.ndim != len(expected) + 1 or any(
            want is not None and got != want
            for got, want in zip(x.shape[1:], expected, strict=True)
        ):
            shape = ", ".join("?" if d is None else str(d) for d in expected)
            raise LowrankEdgeError(f"{self.path}: expected input shape (N, {shape}), got {x.shape}")
        return quantize(x, self.input_io)

    def _check_io(self) -> None:
        """The manifest's I/O facts must describe the model file (a stale manifest is an error)."""
        if self.artifact is None:
            return
        for side, declared, actual in (
            ("input", self.artifact.input, self.input_io),
            ("output", self.artifact.output, self.output_io),
        ):
            if not _same_io(declared, actual):
                raise LowrankEdgeError(
                    f"artifact '{self.artifact.id}' ({self.path}): manifest {side} "
                    f"{_describe(declared)} does not match the model file's {_describe(actual)}"
                )

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class LiteRTRunner(_RunnerBase):
    """A LiteRT interpreter behind the Runner interface; resizes the batch on demand."""

    def __init__(self, interpreter: Any, path: Path, artifact: ArtifactInfo | None):
        inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise LowrankEdgeError(
                f"{path}: expected one input and one output tensor, got {len(inputs)} and "
                f"{len(outputs)}"
            )
        self._interpreter, self.path, self.artifact = interpreter, path, artifact
        self._input, self._output = inputs[0], outputs[0]
        self.input_name = self._input["name"]
        self.input_io = _litert_io(self._input)
        self.output_io = _litert_io(self._output)
        signature = self._input.get("shape_signature", self._input["shape"])
        self._feature_shape = tuple(None if d < 0 else int(d) for d in signature[1:])
        self._batch = int(self._input["shape"][0])
        self._check_io()

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Float32 logits for the float32 batch `x` (any batch size)."""
        if self._interpreter is None:
            raise LowrankEdgeError(f"{self.path}: runner is closed")
        q = self._prepare(x)
        if len(q) != self._batch:
            self._resize(q.shape)
        self._interpreter.set_tensor(self._input["index"], q)
        self._interpreter.invoke()
        return dequantize(self._interpreter.get_tensor(self._output["index"]), self.output_io)

    def _resize(self, shape: tuple[int, ...]) -> None:
        with captured_output() as log:
            try:
                self._interpreter.resize_tensor_input(self._input["index"], list(shape))
                self._interpreter.allocate_tensors()
            except Exception as error:
                problem = error
            else:
                problem = None
        if problem is not None:
            raise LowrankEdgeError(
                f"{self.path}: cannot run batch size {shape[0]}: {_first_line(problem)} "
                f"{log.tail(3)}".strip()
            ) from problem
        self._batch = shape[0]

    def close(self) -> None:
        """Release the interpreter."""
        self._interpreter = None


class OnnxRuntimeRunner(_RunnerBase):
    """An ONNX Runtime session behind the Runner interface."""

    def __init__(self, session: Any, path: Path, artifact: ArtifactInfo | None, profiling: bool):
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise LowrankEdgeError(
                f"{path}: expected one input and one output, got {len(inputs)} and {len(outputs)}"
            )
        self._session, self.path, self.artifact = session, path, artifact
        self._profiling = profiling
        self.input_name, self._output_name = inputs[0].name, outputs[0].name
        self.input_io = _ort_io(inputs[0], artifact.input if artifact else None)
        self.output_io = _ort_io(outputs[0], artifact.output if artifact else None)
        self._feature_shape = tuple(d if isinstance(d, int) else None for d in inputs[0].shape[1:])
        self._check_io()

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Float32 logits for the float32 batch `x` (any batch size)."""
        if self._session is None:
            raise LowrankEdgeError(f"{self.path}: runner is closed")
        q = self._prepare(x)
        try:
            (out,) = self._session.run([self._output_name], {self.input_name: q})
        except Exception as error:  # ORT's own exception types
            raise LowrankEdgeError(
                f"{self.path}: ONNX Runtime failed on input {q.shape}: {_first_line(error)}"
            ) from error
        return dequantize(out, self.output_io)

    def end_profiling(self) -> str:
        """Stop profiling and return the path of the JSON trace ORT wrote."""
        if not self._profiling or self._session is None:
            raise LowrankEdgeError(
                f"{self.path}: profiling was not enabled (open with profile_prefix=...)"
            )
        self._profiling = False
        return self._session.end_profiling()

    def close(self) -> None:
        """Release the session (ending profiling first, so the trace is written)."""
        if self._session is not None and self._profiling:
            self.end_profiling()
        self._session = None


_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
}


def _ort_io(node: Any, declared: TensorIO | None) -> TensorIO:
    """ONNX carries no scale/zero point on graph I/O: integer I/O takes them from the manifest."""
    dtype = _ORT_TYPES.get(node.type, node.type)
    if declared is not None and declared.dtype == dtype:
        return TensorIO(node.name, dtype, declared.scale, declared.zero_point)
    return TensorIO(node.name, dtype)


def _litert_io(details: dict) -> TensorIO:
    dtype = np.dtype(details["dtype"]).name
    scale, zero_point = details.get("quantization", (0.0, 0))
    if scale:
        return TensorIO(details["name"], dtype, float(scale), int(zero_point))
    return TensorIO(details["name"], dtype)


def _same_io(declared: TensorIO, actual: TensorIO) -> bool:
    if declared.dtype != actual.dtype or declared.zero_point != actual.zero_point:
        return False
    if declared.scale is None or actual.scale is None:
        return declared.scale is None and actual.scale is None
    return math.isclose(declared.scale, actual.scale, rel_tol=1e-6)


def _describe(io: TensorIO) -> str:
    if io.scale is None:
        return io.dtype
    return f"{io.dtype} (scale {io.scale:g}, zero point {io.zero_point})"


def _check_threads(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise LowrankEdgeError(f"{name} must be a positive integer or None, got {value!r}")


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise LowrankEdgeError(f"{path}: model file not found")
    return path


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise LowrankEdgeError(f"{path}: cannot read the model file ({error})") from error


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
