"""Decode image files with Pillow and fit images to a model's input size and channels.

Images are resized bilinearly (Pillow's) to the target height and width and converted to its
channels: grey <-> RGB, an alpha channel dropped, a GIF read at its first frame. Pillow, not
TensorFlow, so the data layer stays TF-free. Every failure names the file.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lowrank_edge.errors import DataFormatError, LowrankEdgeError

IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")  # image_dataset_from_directory's


@dataclass(frozen=True)
class ImageShape:
    """An image's height, width and channels (1: grey, 3: RGB)."""

    height: int
    width: int
    channels: int

    def __str__(self) -> str:
        return f"{self.height}x{self.width}x{self.channels}"


def _pil():
    try:
        from PIL import Image
    except ImportError as error:  # Pillow comes with the train extra
        raise LowrankEdgeError(
            "reading image files needs Pillow: pip install 'lowrank-edge[train]'"
        ) from error
    return Image


def resolve_shape(
    wanted: tuple[int | None, int | None, int | None] | None,
    found: Sequence[tuple[str, ImageShape]],
    where: str,
) -> ImageShape:
    """The shape to fit images to: `wanted` (height, width, channels; None where free), the
    rest from the images themselves (`found`: (name, shape) pairs).

    A free size must be shared by every image, else one error saying why and what to pass; free
    channels are grey only when every image is grey, else RGB.
    """
    height, width, channels = wanted or (None, None, None)
    if height is None or width is None:
        sizes = {(shape.height, shape.width): name for name, shape in found}
        if len(sizes) > 1:
            examples = ", ".join(f"{name} {h}x{w}" for (h, w), name in list(sizes.items())[:2])
            raise DataFormatError(
                f"{where}: images have different sizes ({examples}, {len(sizes)} sizes in all) "
                "and nothing fixes the size to resize them to: pass --image-size HxW (or a "
                "model whose input fixes it)"
            )
        height, width = next(iter(sizes))
    if channels is None:
        channels = 1 if all(shape.channels == 1 for _, shape in found) else 3
    return ImageShape(int(height), int(width), int(channels))


def mode_channels(mode: str) -> int:
    """1 for a grey Pillow mode (L, LA, I, F, 1, ...), 3 for a colour one (RGB, RGBA, P, ...)."""
    return 1 if _pil().getmodebase(mode) == "L" else 3


def image_header(path: str | os.PathLike) -> ImageShape:
    """An image file's shape from its header alone (nothing decoded); error names the file."""
    Image = _pil()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                return ImageShape(height, width, mode_channels(image.mode))
    except Exception as error:  # Pillow raises many types for a damaged or foreign file
        raise DataFormatError(f"{path}: not a readable image ({_reason(error)})") from None


def read_image(path: str | os.PathLike, target: ImageShape) -> np.ndarray:
    """Decode `path` (a GIF's first frame) as uint8 (H, W, C) fitted to `target`."""
    Image = _pil()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)  # palette transparency notes
            with Image.open(path) as image:
                image.load()
                return fit_image(image, target)
    except Exception as error:
        raise DataFormatError(f"{path}: not a readable image ({_reason(error)})") from None


def fit_image(image, target: ImageShape) -> np.ndarray:
    """A Pillow image converted to `target`'s channels and resized (bilinear) to its size."""
    Image = _pil()
    image = image.convert("L" if target.channels == 1 else "RGB")
    if image.size != (target.width, target.height):
        image = image.resize((target.width, target.height), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[..., np.newaxis] if pixels.ndim == 2 else pixels


def fit_arrays(images: np.ndarray, target: ImageShape) -> np.ndarray:
    """(N, H, W, C) images fitted to `target`: the same array when they already match.

    uint8 goes through Pillow like a decoded file; float images have their channels
    converted with numpy (ITU-R 601 luma for RGB -> grey, as Pillow) and are resized per channel.
    """
    if tuple(images.shape[1:]) == (target.height, target.width, target.channels):
        return images
    if images.dtype == np.uint8:
        Image = _pil()
        out = np.empty((len(images), target.height, target.width, target.channels), np.uint8)
        for index, image in enumerate(images):
            out[index] = fit_image(Image.fromarray(_pillow_layout(image)), target)
        return out
    return np.stack([_fit_float(image, target) for image in images]).astype(np.float32)


def _pillow_layout(image: np.ndarray) -> np.ndarray:
    """(H, W, 1) -> (H, W), so that Pillow reads it as grey (2 channels read as grey + alpha)."""
    return image[..., 0] if image.shape[-1] == 1 else image


def _fit_float(image: np.ndarray, target: ImageShape) -> np.ndarray:
    channels = image.shape[-1]
    if channels in (2, 4):  # drop the alpha channel
        image, channels = image[..., : channels - 1], channels - 1
    if channels == 3 and target.channels == 1:
        weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
        image = (image.astype(np.float32) @ weights)[..., np.newaxis]
    elif channels == 1 and target.channels == 3:
        image = np.repeat(image, 3, axis=-1)
    if image.shape[:2] == (target.height, target.width):
        return image
    Image = _pil()
    size = (target.width, target.height)
    planes = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32)).resize(
                size, Image.Resampling.BILINEAR
            )
        )
        for c in range(image.shape[-1])
    ]
    return np.stack(planes, axis=-1)


def is_image_file(path: Path) -> bool:
    """True for the suffixes image_dataset_from_directory reads (any case)."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return text or type(error).__name__
