"""Read IDX files (MNIST/EMNIST format): IDX3 uint8 images and IDX1 uint8 labels.

Gzip is detected from the magic bytes 0x1f8b, not from the file name. Every
problem (wrong magic, wrong image size, truncated file, trailing bytes) raises a
DataFormatError naming the file.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from lowrank_edge.errors import DataFormatError

IDX3_UBYTE_MAGIC = 0x00000803  # unsigned byte, 3 dimensions (count, rows, cols)
IDX1_UBYTE_MAGIC = 0x00000801  # unsigned byte, 1 dimension (count)
GZIP_MAGIC = b"\x1f\x8b"
IMAGE_SIDE = 28


def read_maybe_gzip(path: str | os.PathLike) -> bytes:
    """Return the file's bytes, decompressed when it starts with the gzip magic 0x1f8b."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataFormatError(f"{path}: cannot read ({error.strerror or error})") from error
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise DataFormatError(f"{path}: corrupt gzip data ({error})") from error


def _parse_idx(path: Path, data: bytes, magic: int, ndim: int) -> tuple[tuple[int, ...], bytes]:
    """Check the header of an IDX buffer and return (dims, payload)."""
    header_size = 4 + 4 * ndim
    if len(data) < 4:
        raise DataFormatError(f"{path}: truncated IDX header: {len(data)} bytes")
    (found_magic,) = struct.unpack(">I", data[:4])
    if found_magic != magic:
        raise DataFormatError(
            f"{path}: expected IDX{ndim} magic 0x{magic:08x}, got 0x{found_magic:08x}"
        )
    if len(data) < header_size:
        raise DataFormatError(
            f"{path}: truncated IDX header: {len(data)} bytes, expected at least {header_size}"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header_size])
    expected = int(np.prod(dims, dtype=np.int64))
    payload = data[header_size:]
    if len(payload) < expected:
        raise DataFormatError(
            f"{path}: truncated: header promises {'x'.join(map(str, dims))} = {expected} bytes "
            f"of data, file holds {len(payload)}"
        )
    if len(payload) > expected:
        raise DataFormatError(
            f"{path}: {len(payload) - expected} unexpected trailing bytes after the "
            f"{'x'.join(map(str, dims))} data the header promises"
        )
    return dims, payload


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX3 file of 28x28 uint8 images as an (N, 28, 28) uint8 array, as stored."""
    path = Path(path)
    dims, payload = _parse_idx(path, read_maybe_gzip(path), IDX3_UBYTE_MAGIC, 3)
    count, rows, cols = dims
    if (rows, cols) != (IMAGE_SIDE, IMAGE_SIDE):
        raise DataFormatError(
            f"{path}: expected {IMAGE_SIDE}x{IMAGE_SIDE} images, header says {rows}x{cols}"
        )
    return np.frombuffer(payload, dtype=np.uint8).reshape(count, rows, cols).copy()


def read_idx_labels(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX1 file of uint8 labels as an (N,) uint8 array."""
    path = Path(path)
    _, payload = _parse_idx(path, read_maybe_gzip(path), IDX1_UBYTE_MAGIC, 1)
    return np.frombuffer(payload, dtype=np.uint8).copy()
