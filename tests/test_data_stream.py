"""A folder larger than the memory bound is streamed from disk: its splits index to exactly the
in-memory values, and accuracy, fine-tuning and calibration work batch by batch on them."""

import numpy as np
import pytest
from harness.data import write_image_folder

from lowrank_edge.compress.calibration import calibration_images
from lowrank_edge.data import load_data
from lowrank_edge.data.image_files import ImageFiles
from lowrank_edge.errors import DataFormatError, LowrankEdgeError
from lowrank_edge.model.train import FitConfig, fit
from lowrank_edge.pipeline.measure import accuracy_record

SPLITS = ("x_train", "x_val", "x_test")


def quiet(_message: str) -> None:
    pass


def load(folder, **kwargs):
    return load_data(str(folder), log=quiet, **kwargs)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "d"
    write_image_folder(root, {"a": 14, "b": 10, "c": 8}, learnable=True)
    return root


def tiny_model(seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((12, 10, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


def decoded_counts(monkeypatch) -> list[int]:
    """The number of files each decode reads, recorded as streamed splits are used."""
    counts = []
    decode = ImageFiles._decode

    def counting(self, paths):
        counts.append(len(paths))
        return decode(self, paths)

    monkeypatch.setattr(ImageFiles, "_decode", counting)
    return counts


@pytest.mark.parametrize(
    "options",
    [{}, {"preprocessing": "torch", "image_shape": (8, 6, None)}, {"image_shape": (9, 9, 1)}],
    ids=["byte", "torch-resized", "grey"],
)
def test_streamed_splits_index_to_the_in_memory_values(folder, options):
    memory, streamed = load(folder, **options), load(folder, stream=True, **options)
    assert streamed.input_range == memory.input_range
    assert streamed.preprocessing == memory.preprocessing
    index = np.array([3, 0, -1, 3])
    for split in SPLITS:
        x, lazy = getattr(memory, split), getattr(streamed, split)
        assert isinstance(x, np.ndarray) and isinstance(lazy, ImageFiles)
        assert (lazy.shape, lazy.dtype, lazy.ndim, len(lazy)) == (x.shape, x.dtype, 4, len(x))
        np.testing.assert_array_equal(
            getattr(streamed, "y" + split[1:]), getattr(memory, "y" + split[1:])
        )
        for key in (slice(None), slice(1, None, 2), 2, -1, index, [], lazy.shape[0] * [True]):
            np.testing.assert_array_equal(lazy[key], x[key])
            assert lazy[key].dtype == np.float32
        with pytest.raises(IndexError, match="out of range"):
            lazy[len(x)]
        with pytest.raises(TypeError, match="streamed from disk: index a batch"):
            np.asarray(lazy)
    assert "(streamed from disk)" in streamed.summary()


def test_a_folder_over_the_bound_is_streamed_and_small_ones_stay_in_memory(folder, tmp_path):
    lines = []
    bound = 32 * 12 * 10 * 3 * 4  # the folder's float32 bytes exactly
    kept = load_data(str(folder), max_bytes=bound, log=lines.append)
    assert isinstance(kept.x_train, np.ndarray) and not any("streamed" in x for x in lines)
    streamed = load_data(str(folder), max_bytes=bound - 1, log=lines.append)
    assert isinstance(streamed.x_train, ImageFiles)
    assert lines[-1] == (
        f"[data] {folder}: streamed from disk, batch by batch (0.0 GiB as float32, over the "
        "0.0 GiB held in memory)"
    )
    npz = tmp_path / "d.npz"
    np.savez(npz, x=np.zeros((4, 2, 2), np.uint8), y=np.arange(4) % 2)
    with pytest.raises(LowrankEdgeError, match="--stream applies to a folder of images"):
        load(npz, stream=True)


def test_a_corrupt_image_in_a_streamed_folder_is_named_when_read(tmp_path):
    write_image_folder(tmp_path / "d", {"a": 6, "b": 6})
    truncated = tmp_path / "d" / "b" / "002.png"
    truncated.write_bytes(truncated.read_bytes()[:60])  # the header still reads
    data = load(tmp_path / "d", stream=True)
    split = next(s for s in SPLITS if str(truncated) in getattr(data, s).paths)
    with pytest.raises(DataFormatError, match=f"{truncated}: not a readable image"):
        getattr(data, split)[:]
    with pytest.raises(DataFormatError, match=f"{truncated}: not a readable image"):
        fit(tiny_model(), data, FitConfig(epochs=1, batch_size=4, verbose=0))


def test_accuracy_and_fit_on_a_streamed_folder_match_memory_batch_by_batch(folder, monkeypatch):
    memory, streamed = load(folder), load(folder, stream=True)
    counts = decoded_counts(monkeypatch)
    model = tiny_model()
    assert accuracy_record(model, streamed) == accuracy_record(model, memory)
    assert counts and max(counts) <= 512  # accuracy's batch, never a whole split at once
    config = FitConfig(epochs=1, batch_size=8, verbose=0, track_test=True, keep_start=True)
    results = []
    for data in (memory, streamed):
        model = tiny_model()
        counts.clear()
        results.append((fit(model, data, config), model.get_weights()))
    assert 0 < max(counts) <= 8  # streamed: each decode is one batch of the fit
    (in_memory, weights), (on_disk, streamed_weights) = results
    assert on_disk.history.keys() == in_memory.history.keys()
    for key, values in in_memory.history.items():
        np.testing.assert_allclose(on_disk.history[key], values, rtol=1e-5, err_msg=key)
    for got, expected in zip(streamed_weights, weights, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    augmented = fit(
        tiny_model(), streamed, FitConfig(epochs=1, batch_size=8, augment=True, verbose=0)
    )
    assert augmented.epochs_run == 1


def test_calibration_decodes_only_its_sample_of_the_training_split(folder, monkeypatch):
    memory, streamed = load(folder), load(folder, stream=True)
    counts = decoded_counts(monkeypatch)
    images = calibration_images(streamed.x_train, 5, seed=3)
    np.testing.assert_array_equal(images, calibration_images(memory.x_train, 5, seed=3))
    assert counts == [5]
