"""tf.data batches over one split, in memory or streamed from disk.

An in-memory split is sliced as tensors; a streamed one (`ImageFiles`) is shuffled as indices
and each batch decoded in a numpy function, so a pass holds a few batches, never the split.
tf.data wraps an error raised while decoding in its own type: `DecodeErrors` keeps the first
one, so the caller raises it as itself (one message naming the file).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np

from lowrank_edge.data.image_files import Images, is_streamed
from lowrank_edge.errors import LowrankEdgeError

STREAMED_AHEAD = 2  # batches of a streamed split decoded ahead of the model (memory stays bounded)


class DecodeErrors:
    """The first error met decoding a streamed batch inside tf.data (None until one is)."""

    def __init__(self) -> None:
        self.first: LowrankEdgeError | None = None

    def decoder(
        self, images: Images, labels: np.ndarray
    ) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """A function of a batch's indices giving its (images, labels), noting any error."""

        def decode(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            try:
                return images[indices], labels[indices]
            except LowrankEdgeError as error:
                self.first = self.first or error
                raise

        return decode

    @contextlib.contextmanager
    def raised_as_themselves(self) -> Iterator[None]:
        """Run a block (a Keras fit) and raise a decoding error it met as itself."""
        try:
            yield
        except Exception:
            if self.first is not None:
                raise self.first from None
            raise


def split_batches(
    images: Images,
    labels: np.ndarray,
    batch_size: int,
    errors: DecodeErrors,
    seed: int | None = None,
):
    """A tf.data pipeline of (images, labels) batches: shuffled on every pass with `seed` when
    one is given, else in order."""
    import tensorflow as tf

    def shuffled(dataset):
        if seed is None:
            return dataset
        return dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)

    if not is_streamed(images):
        return shuffled(tf.data.Dataset.from_tensor_slices((images, labels))).batch(batch_size)
    decode = errors.decoder(images, labels)

    def load(indices):
        x, y = tf.numpy_function(decode, [indices], (tf.float32, tf.int64), stateful=False)
        x.set_shape((None, *images.shape[1:]))
        y.set_shape((None,))
        return x, y

    indices = shuffled(tf.data.Dataset.range(len(images))).batch(batch_size)
    return indices.map(load, num_parallel_calls=STREAMED_AHEAD)


def prefetched(batches, images: Images):
    """`batches` prefetched: as far as tf.data likes in memory, `STREAMED_AHEAD` when streamed
    (an autotuned buffer of decoded batches could grow to a share of the machine's memory)."""
    import tensorflow as tf

    return batches.prefetch(STREAMED_AHEAD if is_streamed(images) else tf.data.AUTOTUNE)
