"""A folder of class sub-folders as data: classes, splits, formats, fitting, bounds, errors."""

import numpy as np
import pytest
from harness.data import make_rgb_images, write_image_folder
from PIL import Image

from lowrank_edge.data import load_data, spec_name
from lowrank_edge.errors import DataFormatError, LowrankEdgeError
from lowrank_edge.runtime.preprocess import preprocess


def quiet(_message: str) -> None:
    pass


def load(folder, **kwargs):
    return load_data(str(folder), log=quiet, **kwargs)


def all_images(ds) -> np.ndarray:
    return np.concatenate([ds.x_train, ds.x_val, ds.x_test])


def sorted_rows(x: np.ndarray) -> np.ndarray:
    flat = x.reshape(len(x), -1)
    return flat[np.lexsort(flat.T[::-1])]


def test_classes_are_sorted_sub_folders_split_by_class_with_byte_values(tmp_path):
    written = write_image_folder(tmp_path / "pets", {"dog": 10, "cat": 15, "bird": 5})
    ds = load(tmp_path / "pets")
    assert ds.labels == ("bird", "cat", "dog") and ds.num_classes == 3
    assert ds.name == "pets" == spec_name(str(tmp_path / "pets"))
    assert (ds.preprocessing, ds.input_range) == ("byte", (0.0, 255.0))
    assert ds.x_train.shape[1:] == (12, 10, 3) and ds.x_train.dtype == np.float32
    # every class lands in the test split (a fifth of it), and nothing is lost or repeated
    assert np.bincount(ds.y_test).tolist() == [1, 3, 2]
    assert len(ds.x_train) + len(ds.x_val) + len(ds.x_test) == 30
    by_label = {0: "bird", 1: "cat", 2: "dog"}
    x, y = all_images(ds), np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    for label, name in by_label.items():
        np.testing.assert_array_equal(
            sorted_rows(x[y == label]), sorted_rows(written[name].astype(np.float32))
        )


def test_test_split_is_fixed_while_the_seed_moves_train_val(tmp_path):
    write_image_folder(tmp_path / "d", {"a": 10, "b": 10})
    first, again, other = (load(tmp_path / "d", seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(first.x_val, again.x_val)
    assert not np.array_equal(first.x_val, other.x_val)
    np.testing.assert_array_equal(first.x_test, other.x_test)


def test_train_and_test_sub_folders_are_the_splits(tmp_path):
    write_image_folder(tmp_path / "d" / "train", {"a": 6, "b": 4})
    test = write_image_folder(tmp_path / "d" / "test", {"b": 3}, seed=9)
    ds = load(tmp_path / "d")
    assert ds.labels == ("a", "b") and len(ds.x_train) + len(ds.x_val) == 10
    assert ds.y_test.tolist() == [1, 1, 1]
    np.testing.assert_array_equal(ds.x_test, test["b"].astype(np.float32))


def test_every_format_is_read_and_a_gif_at_its_first_frame(tmp_path):
    root = tmp_path / "d"
    for suffix in (".png", ".bmp", ".JPG", ".jpeg"):
        write_image_folder(root, {"a": 2, "b": 2}, suffix=suffix, seed=len(suffix))
    first = np.full((12, 10), 40, np.uint8)
    frames = [Image.fromarray(first), Image.fromarray(np.full((12, 10), 200, np.uint8))]
    frames[0].save(root / "a" / "anim.gif", save_all=True, append_images=frames[1:])
    (root / "a" / "notes.txt").write_text("not an image")
    ds = load(root, image_shape=(None, None, 1), preprocessing="byte")
    assert len(all_images(ds)) == 17
    # the GIF's first frame (40 everywhere) is among the images, the second (200) is not
    means = all_images(ds).mean(axis=(1, 2, 3))
    assert np.any(means == 40.0) and not np.any(means == 200.0)


def test_images_are_resized_and_converted_to_the_model_input(tmp_path):
    written = write_image_folder(tmp_path / "d", {"a": 5, "b": 5}, size=(16, 16))
    rgba = np.dstack([make_rgb_images(1, (16, 16), seed=5)[0], np.full((16, 16), 7, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "d" / "a" / "z_alpha.png")
    ds = load(tmp_path / "d", image_shape=(8, 6, 1))
    assert all_images(ds).shape == (11, 8, 6, 1)
    expected = np.asarray(
        Image.fromarray(written["b"][0]).convert("L").resize((6, 8), Image.Resampling.BILINEAR)
    )
    x = all_images(ds)[..., 0]
    assert any(np.array_equal(image, expected.astype(np.float32)) for image in x)
    rgb = load(tmp_path / "d", image_shape=(16, 16, 3))
    alpha_dropped = rgba[..., :3].astype(np.float32)
    assert any(np.array_equal(image, alpha_dropped) for image in all_images(rgb))


def test_mixed_sizes_are_resized_to_a_target_or_refused_with_the_reason(tmp_path):
    write_image_folder(tmp_path / "d", {"a": 3}, size=(12, 10))
    write_image_folder(tmp_path / "d", {"b": 3}, size=(20, 20))
    with pytest.raises(DataFormatError, match="different sizes .*pass --image-size HxW"):
        load(tmp_path / "d")
    ds = load(tmp_path / "d", image_shape=(10, 10, None))
    assert ds.x_train.shape[1:] == (10, 10, 3)


def test_grey_images_stay_grey_without_a_target(tmp_path):
    (tmp_path / "d" / "a").mkdir(parents=True)
    (tmp_path / "d" / "b").mkdir()
    for index in range(4):
        for name in ("a", "b"):
            Image.fromarray(np.full((5, 5), index * 10, np.uint8)).save(
                tmp_path / "d" / name / f"{index}.png"
            )
    assert load(tmp_path / "d").x_train.shape[1:] == (5, 5, 1)


def test_preprocessing_override_applies_to_the_pixels(tmp_path):
    write_image_folder(tmp_path / "d", {"a": 4, "b": 4})
    byte, torch = load(tmp_path / "d"), load(tmp_path / "d", preprocessing="torch")
    assert torch.preprocessing == "torch" and torch.input_range[0] < -2
    np.testing.assert_array_equal(torch.x_test, preprocess(byte.x_test, "torch"))


def test_max_images_caps_each_class(tmp_path):
    write_image_folder(tmp_path / "d", {"a": 12, "b": 4})
    ds = load(tmp_path / "d", max_images=5)
    counts = np.bincount(np.concatenate([ds.y_train, ds.y_val, ds.y_test]))
    assert counts.tolist() == [5, 4]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda root: None, "no class sub-folders"),
        (lambda root: write_image_folder(root, {"only": 3}), r"one class sub-folder \(only\)"),
        (
            lambda root: (write_image_folder(root, {"a": 2}), (root / "b").mkdir()),
            "no images .* in class folder b",
        ),
        (
            lambda root: (root / "x.png").write_bytes(b"") or write_image_folder(root, {}),
            "its images must sit in one sub-folder per class",
        ),
    ],
    ids=["empty", "one-class", "empty-class", "loose-images"],
)
def test_bad_folders_are_refused(tmp_path, make, message):
    root = tmp_path / "d"
    root.mkdir()
    make(root)
    with pytest.raises(DataFormatError, match=message):
        load(root)


def test_a_corrupt_image_is_named(tmp_path):
    write_image_folder(tmp_path / "d", {"a": 3, "b": 3})
    bad = tmp_path / "d" / "b" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(DataFormatError, match=f"{bad}: not a readable image"):
        load(tmp_path / "d")
    truncated = tmp_path / "d" / "a" / "000.png"
    bad.unlink()
    truncated.write_bytes(truncated.read_bytes()[:60])
    with pytest.raises(DataFormatError, match=f"{truncated}: not a readable image"):
        load(tmp_path / "d")


def test_a_test_class_unknown_to_train_and_a_missing_path_are_refused(tmp_path):
    write_image_folder(tmp_path / "d" / "train", {"a": 2, "b": 2})
    write_image_folder(tmp_path / "d" / "test", {"c": 2})
    with pytest.raises(DataFormatError, match="class folders c are not among the training"):
        load(tmp_path / "d")
    with pytest.raises(LowrankEdgeError, match="no such folder; a data spec is mnist, emnist"):
        load(tmp_path / "missing")
