"""A split of an image folder kept on disk: a numpy-like sequence decoding files on demand.

Folders whose float32 images would not fit the memory bound are streamed: `ImageFiles` holds
the paths, the target shape and the preprocessing, and indexing it (an int, a slice, an index
array or a boolean mask) decodes just those files with Pillow, so a consumer that works batch
by batch (`iter_batches`) holds a few batches at a time. TensorFlow-free, like the data layer.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from lowrank_edge.data.images import ImageShape, read_image
from lowrank_edge.runtime.preprocess import preprocess


@dataclass(frozen=True)
class ImageFiles:
    """Image files read as float32 (N, H, W, C) model inputs: fitted to `target` (resized,
    channels converted) and turned into values by `preprocessing` when indexed."""

    paths: tuple[str, ...]
    target: ImageShape
    preprocessing: str = "byte"

    dtype = np.dtype(np.float32)
    ndim = 4

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.paths), self.target.height, self.target.width, self.target.channels)

    def __getitem__(self, key) -> np.ndarray:
        """Decode the images `key` selects: one (H, W, C) for an int, else (n, H, W, C)."""
        if isinstance(key, int | np.integer):
            return self._decode([self.paths[self._index(int(key))]])[0]
        return self._decode([self.paths[i] for i in self._indices(key)])

    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            f"{len(self):,} images are streamed from disk: index a batch (x[i:j]) instead of "
            "turning the whole split into one array"
        )

    def astype(self, dtype, copy: bool = True) -> ImageFiles:
        """Itself for float32 (what it decodes to; immutable, so no copy is needed)."""
        if np.dtype(dtype) != self.dtype:
            raise TypeError(f"streamed images decode to float32, not {np.dtype(dtype)}")
        return self

    def subset(self, indices) -> ImageFiles:
        """The images at `indices` (in that order), still on disk."""
        return replace(self, paths=tuple(self.paths[i] for i in self._indices(indices)))

    def with_preprocessing(self, name: str) -> ImageFiles:
        """The same files turned into model inputs by `name` (`runtime.preprocess`)."""
        return replace(self, preprocessing=name)

    def _index(self, index: int) -> int:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self)} images")
        return index % len(self)

    def _indices(self, key) -> list[int]:
        if isinstance(key, slice):
            return list(range(*key.indices(len(self))))
        index = np.asarray(key)
        if index.dtype == bool:
            if index.shape != (len(self),):
                raise IndexError(f"a mask of shape {index.shape} for {len(self)} images")
            return np.flatnonzero(index).tolist()
        if index.ndim != 1 or not (index.size == 0 or np.issubdtype(index.dtype, np.integer)):
            raise IndexError(f"index streamed images by an int, a slice or 1-D ints, not {key!r}")
        return [self._index(int(i)) for i in index]

    def _decode(self, paths: list[str]) -> np.ndarray:
        pixels = np.empty((len(paths), *self.shape[1:]), np.uint8)
        for row, path in enumerate(paths):
            pixels[row] = read_image(path, self.target)
        return preprocess(pixels, self.preprocessing)


Images = np.ndarray | ImageFiles  # a split's images: in memory, or kept on disk


def is_streamed(images) -> bool:
    """True for a split kept on disk (`ImageFiles`), False for an in-memory array."""
    return isinstance(images, ImageFiles)


def take(images: Images, indices: np.ndarray) -> Images:
    """`images[indices]`, staying on disk for a streamed split (nothing decoded)."""
    return images.subset(indices) if is_streamed(images) else images[indices]


def iter_batches(images: Images, batch_size: int) -> Iterator[np.ndarray]:
    """Consecutive batches of `images` as arrays; a streamed split decodes the next batch in a
    thread while the current one is used, so at most two are held."""
    starts = range(0, len(images), batch_size)
    if not is_streamed(images):
        yield from (images[start : start + batch_size] for start in starts)
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = None
        for start in starts:
            following = pool.submit(images.__getitem__, slice(start, start + batch_size))
            if pending is not None:
                yield pending.result()
            pending = following
        if pending is not None:
            yield pending.result()
