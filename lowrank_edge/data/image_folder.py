"""A folder of class sub-folders, read as `keras.utils.image_dataset_from_directory` reads it.

Classes are the sub-folder names, sorted; images are the .bmp/.gif/.jpeg/.jpg/.png files found
anywhere under each (a GIF's first frame). `train/` and `test/` sub-folders, when both exist,
are the splits; otherwise a seeded, stratified fifth of each class is the test split. Headers
are read first: the target size and the memory bound are settled before anything is decoded.
A folder whose float32 images exceed the bound is streamed: its splits stay on disk as
`ImageFiles`, decoded batch by batch by whoever uses them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lowrank_edge.data.dataset import capped_indices, hold_out_test
from lowrank_edge.data.image_files import ImageFiles
from lowrank_edge.data.images import (
    IMAGE_SUFFIXES,
    ImageShape,
    image_header,
    is_image_file,
    read_image,
    resolve_shape,
)
from lowrank_edge.data.raw import MAX_DECODED_BYTES, RawSplits, decoded_bytes
from lowrank_edge.errors import DataFormatError
from lowrank_edge.logs import Log, log_stderr


def read_image_folder(
    folder: str | os.PathLike,
    *,
    wanted: tuple[int | None, int | None, int | None] | None = None,
    max_images: int | None = None,
    seed: int = 0,
    max_bytes: int = MAX_DECODED_BYTES,
    log: Log = log_stderr,
) -> RawSplits:
    """Read a class-folder tree as uint8 (N, H, W, C) images fitted to `wanted` (height, width,
    channels; None where the images decide), default preprocessing `byte`.

    `max_images` keeps at most that many images per class and split (a draw seeded by `seed`).
    Images that would take over `max_bytes` as float32 (0: any) are streamed from disk.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFormatError(f"{folder}: not a folder of class sub-folders")
    roots = {"train": folder / "train", "test": folder / "test"}
    has_splits = all(root.is_dir() for root in roots.values())
    classes = _class_names(roots["train"] if has_splits else folder)
    files = {}
    for split, root in (roots if has_splits else {"train": folder}).items():
        files[split] = _class_files(root, classes, required=split == "train")
        if max_images is not None:
            files[split] = _capped(files[split], max_images, seed)
    listed = [(path, label) for split in files.values() for path, label in split]
    log(f"[data] {folder}: {len(listed):,} images in {len(classes)} classes")
    found = [(path.name, image_header(path)) for path, _ in listed]
    target = resolve_shape(wanted, found, str(folder))
    needed = decoded_bytes(len(listed), target)
    if needed > max_bytes:
        why = (
            "as asked"
            if max_bytes == 0
            else f"{needed / 2**30:.1f} GiB as float32, over the {max_bytes / 2**30:.1f} GiB "
            "held in memory"
        )
        log(f"[data] {folder}: streamed from disk, batch by batch ({why})")
        arrays = {split: _on_disk(entries, target) for split, entries in files.items()}
    else:
        arrays = {split: _decode(entries, target) for split, entries in files.items()}
    if has_splits:
        (x_train, y_train), (x_test, y_test) = arrays["train"], arrays["test"]
    else:
        x, y = arrays["train"]
        x_train, y_train, x_test, y_test = hold_out_test(x, y)
    return RawSplits(
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_classes=len(classes),
        labels=tuple(classes),
        source=str(folder),
        preprocessing="byte",
    )


def _class_names(root: Path) -> list[str]:
    """The sorted class sub-folder names (hidden ones skipped); at least two, else an error."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        loose = any(is_image_file(p) for p in root.iterdir() if p.is_file())
        hint = " (its images must sit in one sub-folder per class)" if loose else ""
        raise DataFormatError(f"{root}: no class sub-folders{hint}")
    if len(classes) < 2:
        raise DataFormatError(
            f"{root}: one class sub-folder ({classes[0]}); a classifier needs at least two"
        )
    return classes


def _class_files(root: Path, classes: list[str], required: bool) -> list[tuple[Path, int]]:
    """(path, class index) of every image under each class folder of `root`, in sorted order.

    In the training split every class must hold an image; a test split may lack a class but
    must not add one.
    """
    extra = sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and p.name not in classes
    )
    if extra:
        raise DataFormatError(
            f"{root}: class folders {', '.join(extra)} are not among the training classes "
            f"({', '.join(classes)})"
        )
    entries = []
    for label, name in enumerate(classes):
        paths = _images_under(root / name)
        if not paths and required:
            raise DataFormatError(
                f"{root / name}: no images ({', '.join(IMAGE_SUFFIXES)}) in class folder {name}"
            )
        entries += [(path, label) for path in paths]
    return entries


def _images_under(folder: Path) -> list[Path]:
    """Image files anywhere under `folder`, sorted by path (no symlinked folders followed)."""
    if not folder.is_dir():
        return []
    found = []
    for parent, dirs, names in os.walk(folder):
        dirs.sort()
        found += [Path(parent) / name for name in sorted(names) if is_image_file(Path(name))]
    return found


def _capped(entries: list[tuple[Path, int]], max_images: int, seed: int) -> list:
    """At most `max_images` entries per class: a seeded draw, kept in path order."""
    labels = np.array([label for _, label in entries], dtype=np.int64)
    return [entries[i] for i in capped_indices(labels, max_images, seed)]


def _on_disk(entries: list[tuple[Path, int]], target: ImageShape) -> tuple[ImageFiles, np.ndarray]:
    """The listed files as images decoded on demand, with their int64 labels."""
    return ImageFiles(tuple(str(path) for path, _ in entries), target), _labels(entries)


def _labels(entries: list[tuple[Path, int]]) -> np.ndarray:
    return np.array([label for _, label in entries], dtype=np.int64)


def _decode(entries: list[tuple[Path, int]], target: ImageShape) -> tuple[np.ndarray, np.ndarray]:
    """Decode every listed file into one uint8 (N, H, W, C) array, with its int64 labels."""
    images = np.empty((len(entries), target.height, target.width, target.channels), np.uint8)
    for index, (path, _) in enumerate(entries):
        images[index] = read_image(path, target)
    return images, _labels(entries)
