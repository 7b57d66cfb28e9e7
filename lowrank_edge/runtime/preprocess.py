"""Named pixel preprocessings: uint8 pixels (N, H, W, C) to the float32 values a model takes.

One table serves the data layer (building a `Dataset`), the exporter (`samples.npz`) and the
TF-free bench (decoding `samples.npz` by the name the manifest records), so every step feeds a
model the same values. numpy only: a bare device imports this module.

- unit:      x / 255                          -> [0, 1] (MNIST/EMNIST)
- symmetric: x / 127.5 - 1                    -> [-1, 1] (keras.applications "tf" mode)
- byte:      x as float                       -> [0, 255] (image_dataset_from_directory)
- caffe:     RGB->BGR, minus the ImageNet BGR means (keras.applications "caffe" mode)
- torch:     x / 255, minus the ImageNet means, over their stds (keras.applications "torch")
- none:      values passed unchanged (float data already prepared)
"""

from __future__ import annotations

import numpy as np

from lowrank_edge.errors import LowrankEdgeError

PREPROCESSINGS = ("unit", "symmetric", "byte", "caffe", "torch", "none")
DEFAULT_PREPROCESSING = "unit"  # MNIST/EMNIST, and every manifest written before the field

CAFFE_BGR_MEAN = np.array([103.939, 116.779, 123.68], dtype=np.float32)
TORCH_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
TORCH_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_RGB_ONLY = ("caffe", "torch")  # per-channel ImageNet statistics: three channels, RGB order

_RANGES: dict[str, tuple[float, float] | None] = {
    "unit": (0.0, 1.0),
    "symmetric": (-1.0, 1.0),
    "byte": (0.0, 255.0),
    "caffe": (
        float(np.min(0.0 - CAFFE_BGR_MEAN)),
        float(np.max(np.float32(255.0) - CAFFE_BGR_MEAN)),
    ),
    "torch": (
        float(np.min((0.0 - TORCH_MEAN) / TORCH_STD)),
        float(np.max((1.0 - TORCH_MEAN) / TORCH_STD)),
    ),
    "none": None,  # whatever the data holds
}


def check_preprocessing(name: str) -> str:
    """`name` if it is a known preprocessing; else one clear error listing them."""
    if name not in PREPROCESSINGS:
        raise LowrankEdgeError(
            f"unknown preprocessing {name!r}; choose from {', '.join(PREPROCESSINGS)}"
        )
    return name


def nominal_range(name: str) -> tuple[float, float] | None:
    """The (low, high) every value of pixels 0..255 falls in after `name`; None for `none`."""
    return _RANGES[check_preprocessing(name)]


def check_channels(name: str, channels: int) -> None:
    """caffe and torch normalise three RGB channels: refuse any other count by name."""
    if name in _RGB_ONLY and channels != 3:
        raise LowrankEdgeError(
            f"preprocessing {name!r} needs RGB images (3 channels), the images have {channels}"
        )


def preprocess(pixels: np.ndarray, name: str) -> np.ndarray:
    """Pixel values 0..255 (uint8 or float, channels last) -> float32 model inputs by `name`.

    The arithmetic is float32 in keras.applications' order, so `caffe` and `torch` give what
    `keras.applications.imagenet_utils.preprocess_input` gives.
    """
    check_preprocessing(name)
    x = np.asarray(pixels)
    if name == "none":
        return x.astype(np.float32, copy=False)
    check_channels(name, int(x.shape[-1]) if x.ndim else 0)
    x = x.astype(np.float32)
    if name == "unit":
        return x / np.float32(255.0)
    if name == "symmetric":
        return x / np.float32(127.5) - np.float32(1.0)
    if name == "byte":
        return x
    if name == "caffe":
        return x[..., ::-1] - CAFFE_BGR_MEAN
    return (x / np.float32(255.0) - TORCH_MEAN) / TORCH_STD


def pixels_for(values: np.ndarray, name: str) -> np.ndarray | None:
    """uint8 pixels that `preprocess(..., name)` turns into exactly `values`, or None.

    Lets `samples.npz` store a quarter of the bytes whenever that loses nothing.
    """
    check_preprocessing(name)
    x = np.asarray(values, dtype=np.float64)
    if name in _RGB_ONLY and (x.ndim == 0 or x.shape[-1] != 3):
        return None
    if name == "unit":
        approx = x * 255.0
    elif name == "symmetric":
        approx = (x + 1.0) * 127.5
    elif name == "caffe":
        approx = (x + CAFFE_BGR_MEAN)[..., ::-1]
    elif name == "torch":
        approx = (x * TORCH_STD + TORCH_MEAN) * 255.0
    else:  # byte, none
        approx = x
    if not np.all(np.isfinite(approx)):
        return None
    pixels = np.clip(np.round(approx), 0, 255).astype(np.uint8)
    return pixels if np.array_equal(preprocess(pixels, name), values) else None
