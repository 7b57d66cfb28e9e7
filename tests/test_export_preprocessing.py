"""The one record of how pixels become inputs: Dataset -> samples.npz -> manifest -> bench.

samples.npz stores uint8 pixels whenever the recorded preprocessing turns them back into exactly
the Dataset's values, and `decode_samples` / `Manifest.load_samples` apply it with numpy alone.
"""

import json

import numpy as np
import pytest
from harness.data import write_image_folder
from harness.manifest_files import SAMPLES_FILE, write_manifest_folder

from lowrank_edge.data import load_data
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.export.facts import pick_test_samples, write_samples
from lowrank_edge.runtime.manifest import decode_samples, load_manifest
from lowrank_edge.runtime.preprocess import preprocess


def quiet(_message: str) -> None:
    pass


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "flowers"
    write_image_folder(root, {"daisy": 8, "rose": 8, "tulip": 8})
    return root


@pytest.mark.parametrize("preprocessing", ["byte", "torch", "caffe", "symmetric"])
def test_folder_samples_round_trip_to_the_dataset_values(folder, tmp_path, preprocessing):
    ds = load_data(str(folder), preprocessing=preprocessing, log=quiet)
    x, y = pick_test_samples(ds, len(ds.x_test))
    info = write_samples(tmp_path / SAMPLES_FILE, x, y, ds.preprocessing)
    with np.load(tmp_path / SAMPLES_FILE, allow_pickle=False) as stored:
        assert stored["x"].dtype == np.uint8  # a quarter of the bytes, nothing lost
        decoded = decode_samples(stored["x"], ds.preprocessing)
        np.testing.assert_array_equal(stored["y"], y)
    np.testing.assert_allclose(decoded, x, atol=1e-6, rtol=0)
    assert info.count == len(x)


def test_values_no_pixels_give_are_stored_as_float32(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 4, 4, 3)).astype(np.float32)
    write_samples(tmp_path / SAMPLES_FILE, x, np.arange(5), "none")
    with np.load(tmp_path / SAMPLES_FILE) as stored:
        assert stored["x"].dtype == np.float32
        np.testing.assert_array_equal(decode_samples(stored["x"], "none"), x)


def _edit(path, change):
    document = json.loads(path.read_text())
    change(document["model"]["input"])
    path.write_text(json.dumps(document))


def test_the_manifest_records_the_preprocessing_and_load_samples_applies_it(tmp_path):
    path = write_manifest_folder(tmp_path / "export")
    assert json.loads(path.read_text())["model"]["input"]["preprocessing"] == "unit"
    _edit(path, lambda inp: inp.update(preprocessing="symmetric", range=[-1, 1]))
    manifest = load_manifest(path)
    assert manifest.model.input.preprocessing == "symmetric"
    with np.load(tmp_path / "export" / SAMPLES_FILE) as stored:
        pixels = stored["x"]
    x, _ = manifest.load_samples()
    np.testing.assert_array_equal(x, preprocess(pixels, "symmetric"))


def test_a_manifest_without_the_field_reads_as_unit(tmp_path):
    path = write_manifest_folder(tmp_path / "export")
    _edit(path, lambda inp: inp.pop("preprocessing"))
    manifest = load_manifest(path)
    assert (manifest.model.input.preprocessing, manifest.model.input.range) == ("unit", (0, 1))
    with np.load(tmp_path / "export" / SAMPLES_FILE) as stored:
        expected = stored["x"].astype(np.float32) / np.float32(255.0)
    np.testing.assert_array_equal(manifest.load_samples()[0], expected)


def test_an_unknown_preprocessing_names_the_field(tmp_path):
    path = write_manifest_folder(tmp_path / "export")
    _edit(path, lambda inp: inp.update(preprocessing="imagenet"))
    with pytest.raises(LowrankEdgeError, match="'model.input.preprocessing' must be one of unit"):
        load_manifest(path)
