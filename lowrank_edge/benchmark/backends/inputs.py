"""Fixed, seeded benchmark inputs drawn from the real samples saved at export time."""

from __future__ import annotations

import numpy as np

DEFAULT_SEED = 0


def make_batch(samples: np.ndarray, batch: int, seed: int = DEFAULT_SEED) -> np.ndarray:
    """`batch` samples in a seeded shuffled order, tiled when `batch` exceeds the count.

    The same (samples, batch, seed) always gives the same array, so every model
    and backend sees identical inputs.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if len(samples) == 0:
        raise ValueError("no samples to draw a batch from")
    order = np.random.default_rng(seed).permutation(len(samples))
    reps = -(-batch // len(samples))  # ceil
    index = np.tile(order, reps)[:batch]
    return np.ascontiguousarray(samples[index])
