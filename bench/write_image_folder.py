"""Write real EMNIST-47 images as PNG class folders, the way a user brings their own images.

Usage (from the repo root):

    python bench/write_image_folder.py --emnist ../shared/data/emnist47 --out /tmp/emnist-png \
        --per-class-train 300 --per-class-test 60

The result is `OUT/train/<class>/<n>.png` and `OUT/test/<class>/<n>.png` (8-bit grayscale,
28x28, upright), a folder that `--data OUT` reads like `keras.utils.image_dataset_from_directory`.
Class folders are named `<label index, 2 digits>_<character>` (`00_0`, `10_A`, `36_a`), so their
sorted order is EMNIST's label order and `A`/`a` never collide. The images are taken in a seeded
random order per class from the shared, read-only EMNIST-47 stand-in (see its README); never
commit the written folder. Needs numpy and Pillow only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a bare checkout, before any install
    sys.path.insert(0, str(REPO))

from lowrank_edge.data.emnist import load_emnist  # noqa: E402
from lowrank_edge.errors import LowrankEdgeError  # noqa: E402


def class_folder_names(labels: Sequence[str]) -> list[str]:
    """`00_0`, ..., `10_A`, ..., `36_a`: sortable, and distinct on case-insensitive disks."""
    width = max(2, len(str(len(labels) - 1)))
    return [f"{index:0{width}d}_{text}" for index, text in enumerate(labels)]


def pick_per_class(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices of up to `per_class` images of every class, seeded, in class then draw order."""
    rng = np.random.default_rng(seed)
    picked = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        picked.append(rng.permutation(members)[:per_class])
    return np.concatenate(picked)


def write_split(images: np.ndarray, labels: np.ndarray, names: list[str], folder: Path) -> int:
    """Write each uint8 (28, 28) image as `folder/<class>/<n>.png`; returns the count."""
    from PIL import Image

    counts: dict[int, int] = {}
    for image, label in zip(images, labels, strict=True):
        number = counts.get(int(label), 0)
        counts[int(label)] = number + 1
        target = folder / names[int(label)] / f"{number:05d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(image), mode="L").save(target)
    return len(images)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emnist", type=Path, required=True, help="the EMNIST-47 folder")
    parser.add_argument("--out", type=Path, required=True, help="new folder for the PNGs")
    parser.add_argument("--per-class-train", type=int, default=300)
    parser.add_argument("--per-class-test", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        raise LowrankEdgeError(f"{args.out}: exists and is not empty; choose a new folder")
    raw = load_emnist(args.emnist)
    names = class_folder_names(raw.labels)
    for split, per_class in (("train", args.per_class_train), ("test", args.per_class_test)):
        x, y = getattr(raw, f"x_{split}"), getattr(raw, f"y_{split}")
        chosen = pick_per_class(y, per_class, args.seed)
        count = write_split(x[chosen], y[chosen], names, args.out / split)
        print(f"[images] {split}: {count} PNGs in {len(names)} class folders under {args.out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except LowrankEdgeError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
