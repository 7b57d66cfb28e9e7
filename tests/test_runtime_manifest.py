"""The manifest reader: schema validation with clear errors, checksums of artifacts and samples."""

from __future__ import annotations

import dataclasses
import json

import pytest
from harness.export import copy_export, shared_export
from harness.manifest_files import make_manifest, write_manifest_folder

from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.runtime import (
    SCHEMA_VERSION,
    load_manifest,
    open_artifact,
    read_artifact,
    verify_artifact,
)
from lowrank_edge.runtime.manifest import manifest_from_dict


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return shared_export(tmp_path_factory)


@pytest.fixture
def folder(shared, tmp_path):
    return copy_export(shared, tmp_path)


def _rewrite(folder, change):
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


def test_dict_round_trip_is_lossless(shared):
    manifest = shared.roundtrip.manifest
    assert manifest.schema == SCHEMA_VERSION
    assert manifest_from_dict(json.loads(json.dumps(manifest.to_dict()))) == manifest


def _set(path, value):
    def change(data):
        *parents, last = path
        for key in parents:
            data = data[key]
        data[last] = value

    return change


def _delete(path):
    def change(data):
        *parents, last = path
        for key in parents:
            data = data[key]
        del data[last]

    return change


@pytest.mark.parametrize(
    "change, message",
    [
        (_set(["schema"], 2), r"schema 2 is not supported \(this lowrank-edge reads schema 1\)"),
        (_delete(["model", "input", "name"]), r"missing field 'model\.input\.name'"),
        (_delete(["provenance"]), r"missing field 'provenance'"),
        (
            _set(["artifacts", 0, "bytes"], "12"),
            r"field 'artifacts\[0\]\.bytes' must be an integer, got a string",
        ),
        (
            _set(["artifacts", 1, "parity", "passed"], 1),
            r"field 'artifacts\[1\]\.parity\.passed' must be true or false, got int",
        ),
        (
            _set(["model", "params"], True),
            r"field 'model\.params' must be an integer, got a boolean",
        ),
        (_set(["model", "labels"], "abcde"), r"field 'model\.labels' must be a list, got a string"),
        (
            _set(["model", "input", "shape", 1], "28"),
            r"'model\.input\.shape\[1\]' must be an integer",
        ),
        (_set(["artifacts", 0, "format"], "coreml"), r"'artifacts\[0\]\.format' must be one of"),
        (
            _set(["artifacts", 0, "file"], "../../model.keras"),
            r"'artifacts\[0\]\.file' must be a plain file name",
        ),
        (_set(["artifacts", 0, "sha256"], "abc"), r"'artifacts\[0\]\.sha256' must be 64 lowercase"),
        (_set(["samples"], []), r"field 'samples' must be an object, got a list"),
        (
            _set(["artifacts", 1, "id"], "tflite-float32"),
            r"artifact ids repeat: tflite-float32",
        ),
        (
            _set(["artifacts", 0, "test_accuracy"], 0.9),
            r"field 'artifacts\[0\]\.test_accuracy' must be an object, got float",
        ),
        (
            _delete(["artifacts", 0, "test_accuracy", "keras_correct"]),
            r"missing field 'artifacts\[0\]\.test_accuracy\.keras_correct'",
        ),
        (
            _set(["artifacts", 2, "test_accuracy", "correct"], 10**6),
            r"'artifacts\[2\]\.test_accuracy\.correct' must be between 0 and images \(128\)",
        ),
        (
            _set(["artifacts", 2, "test_accuracy", "accuracy"], 1.5),
            r"'artifacts\[2\]\.test_accuracy\.accuracy' must be between 0 and 1, got 1\.5",
        ),
        (
            _set(["artifacts", 0, "test_accuracy", "images"], 0),
            r"'artifacts\[0\]\.test_accuracy\.images' must be at least 1, got 0",
        ),
        (
            _set(["artifacts", 1, "names_stripped"], "yes"),
            r"'artifacts\[1\]\.names_stripped' must be true or false",
        ),
    ],
)
def test_invalid_manifest_names_the_file_and_field(folder, change, message):
    path = _rewrite(folder, change)
    with pytest.raises(LowrankEdgeError, match=message) as caught:
        load_manifest(folder)
    assert str(caught.value).startswith(f"{path}: ")


def test_every_artifact_records_its_test_accuracy(shared):
    manifest = shared.roundtrip.manifest
    images = len(shared.dataset.x_test)
    for artifact in manifest.artifacts:
        recorded = artifact.test_accuracy
        assert recorded is not None and recorded.images == images, artifact.id
        assert 0 <= recorded.correct <= images and recorded.accuracy == recorded.correct / images
    document = manifest.to_dict()
    assert set(document["artifacts"][0]["test_accuracy"]) == {
        "images",
        "correct",
        "accuracy",
        "keras_correct",
        "keras_accuracy",
    }


def test_older_manifest_without_the_new_fields_still_loads(shared, folder):
    """A manifest written before test_accuracy and names_stripped existed (no keys at all)
    reads as None and False."""

    def drop_test_accuracy(data):
        for artifact in data["artifacts"]:
            del artifact["test_accuracy"]
            del artifact["names_stripped"]

    _rewrite(folder, drop_test_accuracy)
    old = load_manifest(folder)
    assert all(artifact.test_accuracy is None for artifact in old.artifacts)
    expected = dataclasses.replace(
        shared.roundtrip.manifest,
        artifacts=tuple(
            dataclasses.replace(a, test_accuracy=None) for a in shared.roundtrip.manifest.artifacts
        ),
    )
    assert old == expected
    x, _ = old.load_samples()
    for artifact_id in ("tflite-int8-full", "onnx-int8-qdq"):
        with open_artifact(old, artifact_id) as runner:
            assert runner.predict(x[:4]).shape == (4, 5)


def test_hand_written_manifest_with_a_null_or_missing_test_accuracy(tmp_path):
    path = write_manifest_folder(tmp_path / "export")
    document = json.loads(path.read_text())
    assert all(a["test_accuracy"] is None for a in document["artifacts"])
    del document["artifacts"][0]["test_accuracy"]
    path.write_text(json.dumps(document))
    manifest = load_manifest(path)
    assert [a.test_accuracy for a in manifest.artifacts] == [None, None]


def test_manifest_that_is_not_json_or_missing(folder, tmp_path):
    (folder / "manifest.json").write_text('{"schema": 1,')
    with pytest.raises(LowrankEdgeError, match=r"manifest\.json: not valid JSON \(line 1, column"):
        load_manifest(folder / "manifest.json")
    with pytest.raises(
        LowrankEdgeError,
        match=r"elsewhere/manifest\.json: manifest not found \(export the model first\)",
    ):
        load_manifest(tmp_path / "elsewhere")


def test_unknown_artifact_id_lists_the_known_ones(shared):
    with pytest.raises(
        LowrankEdgeError, match=r"no artifact 'tflite-int4' \(it has: tflite-float32, "
    ):
        shared.roundtrip.manifest.artifact("tflite-int4")


@pytest.mark.parametrize("artifact_id", ["tflite-int8-full", "onnx-float32"])
def test_tampered_artifact_is_detected(folder, artifact_id):
    manifest = load_manifest(folder)
    path = manifest.artifact_path(artifact_id)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(LowrankEdgeError, match=rf"artifact '{artifact_id}' .*SHA-256 mismatch"):
        verify_artifact(manifest, artifact_id)
    with pytest.raises(LowrankEdgeError, match="SHA-256 mismatch"):
        read_artifact(manifest, artifact_id)
    with pytest.raises(LowrankEdgeError, match="SHA-256 mismatch"):
        open_artifact(manifest, artifact_id)


def test_missing_artifact_file_is_reported(folder):
    manifest = load_manifest(folder)
    manifest.artifact_path("tflite-float32").unlink()
    with pytest.raises(LowrankEdgeError, match=r"artifact 'tflite-float32': file .* is missing"):
        open_artifact(manifest, "tflite-float32")


def test_tampered_or_missing_samples_are_detected(folder):
    manifest = load_manifest(folder)
    samples = folder / manifest.samples.file
    data = bytearray(samples.read_bytes())
    data[len(data) // 2] ^= 0x01
    samples.write_bytes(bytes(data))
    with pytest.raises(LowrankEdgeError, match=r"samples file .* SHA-256 mismatch"):
        manifest.load_samples()
    samples.unlink()
    with pytest.raises(LowrankEdgeError, match=r"samples file .*samples\.npz is missing"):
        manifest.load_samples()


# --- paths that lead out of the export folder (hand-written folder, no export needed) -----


def _escape_by_symlink(folder, name, tmp_path):
    """Replace `folder/name` by a symlink to an identical copy outside the folder."""
    outside = tmp_path / "outside" / name
    outside.parent.mkdir(exist_ok=True)
    outside.write_bytes((folder / name).read_bytes())  # same bytes: the checksum still matches
    (folder / name).unlink()
    (folder / name).symlink_to(outside)
    return outside


@pytest.mark.parametrize(
    "name, entry",
    [
        ("model.onnx", r"artifacts\[1\]\.file \(artifact 'onnx-float32'\) 'model\.onnx'"),
        ("samples.npz", r"samples\.file 'samples\.npz'"),
    ],
)
def test_symlink_leading_out_of_the_folder_is_refused(tmp_path, name, entry):
    path = write_manifest_folder(tmp_path / "export")
    outside = _escape_by_symlink(path.parent, name, tmp_path)
    with pytest.raises(LowrankEdgeError, match=rf"{entry} resolves to .*outside/{name}") as caught:
        load_manifest(path.parent)
    assert str(caught.value).startswith(f"{path}: ")
    assert outside.read_bytes()  # nothing was removed or changed


def test_symlink_made_after_loading_is_refused_when_the_file_is_used(tmp_path):
    path = write_manifest_folder(tmp_path / "export")
    manifest = load_manifest(path)
    _escape_by_symlink(path.parent, "model.tflite", tmp_path)
    with pytest.raises(LowrankEdgeError, match=r"artifacts\[0\]\.file .* not inside the export"):
        verify_artifact(manifest, "tflite-float32")
    _escape_by_symlink(path.parent, "samples.npz", tmp_path)
    with pytest.raises(LowrankEdgeError, match=r"samples\.file 'samples\.npz' resolves to"):
        manifest.load_samples()


def test_symlinks_within_the_folder_and_a_symlinked_folder_are_fine(tmp_path):
    path = write_manifest_folder(tmp_path / "export")
    folder = path.parent
    (folder / "store").mkdir()
    (folder / "model.onnx").rename(folder / "store" / "model.onnx")
    (folder / "model.onnx").symlink_to(folder / "store" / "model.onnx")
    (tmp_path / "link").symlink_to(folder, target_is_directory=True)
    manifest = load_manifest(tmp_path / "link")
    assert verify_artifact(manifest, "onnx-float32") == tmp_path / "link" / "model.onnx"
    x, y = manifest.load_samples()
    assert x.shape == (3, 28, 28, 1) and y.tolist() == [0, 1, 2]


def test_symlink_loop_is_one_clear_error(tmp_path):
    path = write_manifest_folder(tmp_path / "export")
    folder = path.parent
    (folder / "model.tflite").unlink()
    (folder / "loop").symlink_to(folder / "model.tflite")
    (folder / "model.tflite").symlink_to(folder / "loop")
    with pytest.raises(LowrankEdgeError, match=r"artifacts\[0\]\.file .* cannot be resolved"):
        load_manifest(folder)


@pytest.mark.parametrize("name", ["/etc/passwd", "../model.onnx", "sub/../../x", "a\x00b"])
def test_absolute_or_climbing_names_are_refused(tmp_path, name):
    path = write_manifest_folder(tmp_path / "export")
    document = json.loads(path.read_text())
    document["artifacts"][1]["file"] = name
    path.write_text(json.dumps(document))
    with pytest.raises(LowrankEdgeError, match=r"'artifacts\[1\]\.file' must be a plain file"):
        load_manifest(path)
    # a Manifest built in code skips the schema check, but not the path check on use
    manifest = dataclasses.replace(
        load_manifest(write_manifest_folder(tmp_path / "clean")),
        artifacts=(dataclasses.replace(make_manifest().artifacts[0], file=name),),
    )
    with pytest.raises(LowrankEdgeError, match=r"artifacts\[0\]\.file .* must be a plain file"):
        manifest.artifact_path("tflite-float32")


def test_file_name_the_file_system_cannot_encode_is_one_clear_error(tmp_path):
    path = write_manifest_folder(tmp_path / "export")
    document = json.loads(path.read_text())
    document["samples"]["file"] = "\ud800.npz"  # a lone surrogate: valid JSON, no valid path
    path.write_text(json.dumps(document))
    with pytest.raises(LowrankEdgeError, match=r"samples\.file '\\ud800\.npz' cannot be resolved"):
        load_manifest(path)
