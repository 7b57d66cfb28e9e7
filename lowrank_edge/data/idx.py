"""Read IDX files (MNIST/EMNIST format): IDX3 uint8 images and IDX1 uint8 labels.

Gzip is detected from the magic bytes 0x1f8b, not from the file name. The file is
read as a stream and never past what its header declares: a small gzip file that
expands to gigabytes (a "gzip bomb"), or a header promising billions of images,
costs no more memory than the data actually present up to that size. Every problem
(wrong magic, wrong image size, truncated file, trailing bytes, corrupt gzip) raises
a DataFormatError naming the file.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from lowrank_edge.errors import DataFormatError

IDX3_UBYTE_MAGIC = 0x00000803  # unsigned byte, 3 dimensions (count, rows, cols)
IDX1_UBYTE_MAGIC = 0x00000801  # unsigned byte, 1 dimension (count)
GZIP_MAGIC = b"\x1f\x8b"
IMAGE_SIDE = 28
CHUNK_BYTES = 1 << 20  # read (and decompress) at most this much at a time
TRAILING_COUNT_LIMIT = 1 << 20  # count at most this many trailing bytes, then stop reading

# Errors a damaged gzip stream raises while it is read (BadGzipFile is an OSError).
_GZIP_ERRORS = (OSError, EOFError, zlib.error)


@contextlib.contextmanager
def _open_stream(path: Path) -> Iterator[BinaryIO]:
    """The file as a binary stream, decompressed on the fly when it starts with 0x1f8b."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as error:
        raise DataFormatError(f"{path}: cannot read ({error.strerror or error})") from error
    with handle:
        try:
            is_gzip = handle.read(2) == GZIP_MAGIC
            handle.seek(0)
        except OSError as error:
            raise DataFormatError(f"{path}: cannot read ({error.strerror or error})") from error
        if not is_gzip:
            yield handle
            return
        with gzip.GzipFile(fileobj=handle, mode="rb") as stream:
            yield stream


def _read_up_to(path: Path, stream: BinaryIO, size: int) -> bytearray:
    """Read until `size` bytes or the end of the data, in bounded chunks."""
    buffer = bytearray()
    try:
        while len(buffer) < size:
            chunk = stream.read(min(CHUNK_BYTES, size - len(buffer)))
            if not chunk:
                break
            buffer += chunk
    except _GZIP_ERRORS as error:
        raise DataFormatError(f"{path}: corrupt gzip data ({error})") from error
    return buffer


def _skip_up_to(path: Path, stream: BinaryIO, size: int) -> int:
    """Read and discard up to `size` bytes in bounded chunks; return how many there were."""
    skipped = 0
    try:
        while skipped < size:
            chunk = stream.read(min(CHUNK_BYTES, size - skipped))
            if not chunk:
                break
            skipped += len(chunk)
    except _GZIP_ERRORS as error:
        raise DataFormatError(f"{path}: corrupt gzip data ({error})") from error
    return skipped


def gunzip_limited(packed: bytes, limit: int, where: str) -> bytes:
    """Decompress gzip bytes known to expand to at most `limit` bytes; error if they expand more.

    Decompression stops one byte past `limit`, so a gzip bomb costs at most `limit` bytes.
    """
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(packed), mode="rb") as stream:
            data = stream.read(limit + 1)
    except _GZIP_ERRORS as error:
        raise DataFormatError(f"{where}: corrupt gzip data ({error})") from error
    if len(data) > limit:
        raise DataFormatError(
            f"{where}: gzip data expands to more than {limit:,} bytes, the most expected; "
            "refusing to decompress further"
        )
    return data


def read_idx(
    path: str | os.PathLike,
    magic: int,
    ndim: int,
    check_dims: Callable[[Path, tuple[int, ...]], None] | None = None,
) -> tuple[tuple[int, ...], np.ndarray]:
    """Read an IDX file of unsigned bytes: return (dims, flat uint8 payload).

    The header is checked first (magic, then `check_dims(path, dims)` if given); the
    payload is read only up to the size the header declares, plus one byte to detect
    trailing data, so memory never exceeds the data actually present.
    """
    path = Path(path)
    header_size = 4 + 4 * ndim
    with _open_stream(path) as stream:
        header = _read_up_to(path, stream, header_size)
        if len(header) < 4:
            raise DataFormatError(f"{path}: truncated IDX header: {len(header)} bytes")
        (found_magic,) = struct.unpack(">I", header[:4])
        if found_magic != magic:
            raise DataFormatError(
                f"{path}: expected IDX{ndim} magic 0x{magic:08x}, got 0x{found_magic:08x}"
            )
        if len(header) < header_size:
            raise DataFormatError(
                f"{path}: truncated IDX header: {len(header)} bytes, "
                f"expected at least {header_size}"
            )
        dims = struct.unpack(f">{ndim}I", header[4:header_size])
        if check_dims is not None:
            check_dims(path, dims)
        expected = math.prod(dims)  # exact: no int64 overflow for huge header values
        shown = "x".join(map(str, dims))
        payload = _read_up_to(path, stream, expected + 1)
        if len(payload) < expected:
            raise DataFormatError(
                f"{path}: truncated: header promises {shown} = {expected} bytes "
                f"of data, file holds {len(payload)}"
            )
        if len(payload) > expected:
            more = _skip_up_to(path, stream, TRAILING_COUNT_LIMIT)
            count = f"at least {1 + more}" if more == TRAILING_COUNT_LIMIT else f"{1 + more}"
            raise DataFormatError(
                f"{path}: {count} unexpected trailing bytes after the {shown} data the header "
                "promises"
            )
    return dims, np.frombuffer(payload, dtype=np.uint8)


def _check_image_side(path: Path, dims: tuple[int, ...]) -> None:
    rows, cols = dims[1:]
    if (rows, cols) != (IMAGE_SIDE, IMAGE_SIDE):
        raise DataFormatError(
            f"{path}: expected {IMAGE_SIDE}x{IMAGE_SIDE} images, header says {rows}x{cols}"
        )


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX3 file of 28x28 uint8 images as an (N, 28, 28) uint8 array, as stored."""
    dims, payload = read_idx(path, IDX3_UBYTE_MAGIC, 3, _check_image_side)
    return payload.reshape(dims)


def read_idx_labels(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX1 file of uint8 labels as an (N,) uint8 array."""
    _, payload = read_idx(path, IDX1_UBYTE_MAGIC, 1)
    return payload
