"""Driving the CLI in tests: a click runner call and a tiny MNIST-format IDX folder.

- `run_cli(*args)`: `lowrank-edge ARGS` in-process (exceptions other than the CLI's own
  one-line errors propagate, so a crash shows its traceback).
- `write_mnist_folder(folder, n_train, n_test)`: real-format MNIST IDX files (28x28x1, 10
  classes, random pixels, every class present) that `--dataset mnist --data-dir` reads.
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from harness.data import make_images, make_labels, write_idx_images, write_idx_labels
from lowrank_edge.cli import main


def run_cli(*args: object) -> Result:
    """Invoke `lowrank-edge` with `args` (stringified) and return click's result."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def write_mnist_folder(folder: Path, n_train: int = 80, n_test: int = 20) -> Path:
    """Write an MNIST IDX folder (gzip) with `n_train` train and `n_test` test images."""
    write_idx_images(folder / "train-images-idx3-ubyte.gz", make_images(n_train, seed=1))
    write_idx_labels(folder / "train-labels-idx1-ubyte.gz", make_labels(n_train, 10, seed=1))
    write_idx_images(folder / "t10k-images-idx3-ubyte.gz", make_images(n_test, seed=2))
    write_idx_labels(folder / "t10k-labels-idx1-ubyte.gz", make_labels(n_test, 10, seed=2))
    return folder
