"""Driving the CLI in tests: a click runner call and a tiny MNIST-format IDX folder.

- `run_cli(*args)`: `lowrank-edge ARGS` in-process (exceptions other than the CLI's own
  one-line errors propagate, so a crash shows its traceback).
- `write_mnist_folder(folder, n_train, n_test, learnable)`: real-format MNIST IDX files
  (28x28x1) that `--dataset mnist --data-dir` reads: random pixels with every one of the 10
  classes present, or with `learnable` stripe patterns of classes 0-4, which a tiny net learns
  (use these where a test compares accuracies: at chance level they are noise).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from click.testing import CliRunner, Result

from harness.data import (
    make_images,
    make_labels,
    make_pattern_images,
    write_idx_images,
    write_idx_labels,
)
from lowrank_edge.cli import main


def run_cli(*args: object) -> Result:
    """Invoke `lowrank-edge` with `args` (stringified) and return click's result."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def write_mnist_folder(
    folder: Path, n_train: int = 80, n_test: int = 20, learnable: bool = False
) -> Path:
    """Write an MNIST IDX folder (gzip) with `n_train` train and `n_test` test images: random
    ones, or `learnable` stripe patterns (classes 0-4, see `make_pattern_images`)."""
    for prefix, count, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        if learnable:
            images, labels = make_pattern_images(count, 5, np.random.default_rng(seed))
        else:
            images, labels = make_images(count, seed=seed), make_labels(count, 10, seed=seed)
        write_idx_images(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx_labels(folder / f"{prefix}-labels-idx1-ubyte.gz", labels.astype(np.uint8))
    return folder
