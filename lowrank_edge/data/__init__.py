"""Datasets behind one spec string: MNIST (fetched and cached, or from a folder), EMNIST (from a
folder), a folder of class sub-folders, an .npz file, or `tfds:NAME[:SPLIT]`.

`load_data(spec, ...)` is the one entry point (`load_dataset` is its MNIST/EMNIST part). It
never imports TensorFlow, except through tensorflow-datasets for a `tfds:` spec (Keras is only
run, in a subprocess, when MNIST has to be downloaded through it).
"""

from __future__ import annotations

import os
from pathlib import Path

from lowrank_edge.data.dataset import Dataset, split_train_val
from lowrank_edge.data.emnist import load_emnist
from lowrank_edge.data.images import ImageShape, resolve_shape
from lowrank_edge.data.mnist import fetch_mnist
from lowrank_edge.data.mnist_folder import load_mnist_folder
from lowrank_edge.data.raw import MAX_DECODED_BYTES, RawSplits, to_dataset, with_channels
from lowrank_edge.data.tfds_source import TFDS_PREFIX, parse_tfds_spec
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.logs import Log, log_stderr

DATASET_NAMES = ("mnist", "emnist")
EMNIST_DIR_ENV = "LOWRANK_EDGE_EMNIST_DIR"
SPEC_HELP = (
    "mnist, emnist, a folder of class sub-folders (with train/ and test/ inside, or split "
    "here), an .npz (x_train, y_train, x_test, y_test, or x, y) or tfds:NAME[:SPLIT]"
)

# (height, width, channels) to fit images to, None where the images decide
WantedShape = tuple[int | None, int | None, int | None]

__all__ = [
    "DATASET_NAMES",
    "SPEC_HELP",
    "Dataset",
    "RawSplits",
    "load_data",
    "load_dataset",
    "load_raw",
    "spec_name",
    "split_train_val",
]


def load_raw(
    name: str, data_dir: str | os.PathLike | None = None, *, log: Log = log_stderr
) -> RawSplits:
    """Read dataset `name` as uint8 train/test splits (no validation split yet)."""
    if name == "mnist":
        if data_dir is None:
            return fetch_mnist(log=log)
        return load_mnist_folder(data_dir, log)
    if name == "emnist":
        folder = data_dir if data_dir is not None else os.environ.get(EMNIST_DIR_ENV)
        if not folder:
            raise LowrankEdgeError(
                "emnist needs its files: pass --data-dir DIR "
                f"(e.g. --data-dir ../shared/data/emnist47) or set {EMNIST_DIR_ENV}"
            )
        return load_emnist(Path(folder), log=log)
    raise LowrankEdgeError(f"unknown dataset {name!r}; known: {', '.join(DATASET_NAMES)}")


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    log: Log = log_stderr,
    preprocessing: str | None = None,
    image_shape: WantedShape | None = None,
) -> Dataset:
    """Load `name` ("mnist" or "emnist") as float32 upright images with an 80/20 train/val split.

    The test split is the dataset's own (for Kaggle MNIST CSVs: a fixed held-out 1/7). By
    default `unit` in [0, 1] at 28x28x1; `image_shape` resizes and converts the images.
    """
    raw = load_raw(name, data_dir, log=log)
    return to_dataset(
        name,
        raw,
        val_fraction=val_fraction,
        seed=seed,
        preprocessing=preprocessing,
        target=_array_target(raw, image_shape),
    )


def spec_kind(spec: str) -> str:
    """'builtin', 'tfds', 'folder' or 'npz' for a data spec; one clear error for anything else."""
    if spec in DATASET_NAMES:
        return "builtin"
    if spec.startswith(TFDS_PREFIX):
        return "tfds"
    path = Path(spec)
    if path.is_dir():
        return "folder"
    if path.suffix.lower() == ".npz":
        return "npz"
    problem = "no such folder" if not path.exists() else "not a folder or an .npz file"
    raise LowrankEdgeError(f"data {spec!r}: {problem}; a data spec is {SPEC_HELP}")


def spec_name(spec: str) -> str:
    """A short name for the data of `spec` (output folders, reports): mnist, the folder's name,
    the .npz file's stem, or the TFDS name."""
    kind = spec_kind(spec)
    if kind == "builtin":
        return spec
    if kind == "tfds":
        return parse_tfds_spec(spec)[0].replace("/", "_")
    path = Path(spec).resolve()
    return path.name if kind == "folder" else path.stem


def load_data(
    spec: str,
    *,
    image_shape: WantedShape | None = None,
    preprocessing: str | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    max_images: int | None = None,
    max_bytes: int = MAX_DECODED_BYTES,
    stream: bool = False,
    log: Log = log_stderr,
) -> Dataset:
    """Load the data `spec` names (see `SPEC_HELP`) as a `Dataset` fitted to `image_shape`.

    `image_shape` is the model's input (height, width, channels; None where free): images are
    resized and converted to it. `preprocessing` overrides the source's own (mnist/emnist:
    `unit`; folders, uint8 .npz and TFDS: `byte`, 0..255; float .npz: `none`). `seed` splits
    train/validation and draws the `max_images` kept per class; `data_dir` is the MNIST/EMNIST
    folder or the TFDS data dir. Decoded float32 images above `max_bytes` are refused, except
    a folder's: those are streamed from disk (`ImageFiles`), as they are with `stream`.
    """
    kind = spec_kind(spec)
    if stream and kind != "folder":
        raise LowrankEdgeError(
            f"--stream applies to a folder of images; {spec!r} is read into memory"
        )
    if kind == "builtin":
        if max_images is not None:
            raise LowrankEdgeError("--max-images applies to folders, .npz files and tfds: data")
        return load_dataset(
            spec,
            data_dir,
            val_fraction=val_fraction,
            seed=seed,
            log=log,
            preprocessing=preprocessing,
            image_shape=image_shape,
        )
    if data_dir is not None and kind != "tfds":
        raise LowrankEdgeError(
            "--data-dir applies to mnist, emnist and tfds: data; a folder or an .npz is "
            "given by its own path"
        )
    target = None
    if kind == "folder":
        from lowrank_edge.data.image_folder import read_image_folder

        raw = read_image_folder(
            spec,
            wanted=image_shape,
            max_images=max_images,
            seed=seed,
            max_bytes=0 if stream else max_bytes,
            log=log,
        )
    elif kind == "npz":
        from lowrank_edge.data.npz_file import read_npz

        raw = read_npz(spec, max_bytes, max_images, seed)
        target = _array_target(raw, image_shape)
    else:
        from lowrank_edge.data.tfds_source import read_tfds

        raw = read_tfds(
            spec,
            data_dir=data_dir,
            wanted=image_shape,
            max_images=max_images,
            max_bytes=max_bytes,
            log=log,
        )
    return to_dataset(
        spec_name(spec),
        raw,
        val_fraction=val_fraction,
        seed=seed,
        preprocessing=preprocessing,
        target=target,
        max_bytes=max_bytes,
    )


def _array_target(raw: RawSplits, image_shape: WantedShape | None) -> ImageShape | None:
    """The shape in-memory images are fitted to: `image_shape` completed by their own shape."""
    if image_shape is None:
        return None
    own = ImageShape(*with_channels(raw.x_train[:0]).shape[1:])
    return resolve_shape(image_shape, [(raw.source, own)], raw.source)
