"""Named preprocessings: keras.applications' values, nominal ranges, exact uint8 round trips."""

import numpy as np
import pytest
from harness.data import make_rgb_images

from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.runtime.preprocess import (
    PREPROCESSINGS,
    nominal_range,
    pixels_for,
    preprocess,
)

PIXELS = make_rgb_images(6, (9, 7), seed=3)


@pytest.mark.parametrize(
    "name, mode", [("caffe", "caffe"), ("torch", "torch"), ("symmetric", "tf")]
)
def test_matches_keras_applications_preprocess_input(name, mode):
    from keras.applications import imagenet_utils

    expected = imagenet_utils.preprocess_input(PIXELS.astype(np.float32), mode=mode)
    np.testing.assert_allclose(preprocess(PIXELS, name), expected, atol=1e-4, rtol=0)


def test_simple_scalings():
    x = PIXELS.astype(np.float32)
    np.testing.assert_array_equal(preprocess(PIXELS, "unit"), x / np.float32(255.0))
    np.testing.assert_array_equal(preprocess(PIXELS, "byte"), x)
    floats = np.linspace(-3, 3, 12, dtype=np.float32).reshape(2, 2, 3)
    assert preprocess(floats, "none") is floats  # passed unchanged
    assert preprocess(PIXELS, "unit").dtype == np.float32


@pytest.mark.parametrize("name", [n for n in PREPROCESSINGS if n != "none"])
def test_every_pixel_value_lies_in_the_nominal_range(name):
    every = np.broadcast_to(np.arange(256, dtype=np.uint8)[:, None, None, None], (256, 1, 1, 3))
    values = preprocess(every, name)
    low, high = nominal_range(name)
    assert values.min() == pytest.approx(low, abs=1e-5)
    assert values.max() == pytest.approx(high, abs=1e-5)


@pytest.mark.parametrize("name", PREPROCESSINGS)
def test_pixels_for_reproduces_the_values_exactly(name):
    values = preprocess(PIXELS, name)
    pixels = pixels_for(values, name)
    assert pixels is not None and pixels.dtype == np.uint8
    np.testing.assert_array_equal(preprocess(pixels, name), values)


def test_pixels_for_refuses_values_no_pixels_give():
    values = preprocess(PIXELS, "torch")
    values[0, 0, 0, 0] += 1e-3
    assert pixels_for(values, "torch") is None
    assert pixels_for(np.full((1, 2, 2, 1), 0.3, np.float32), "none") is None


def test_caffe_and_torch_need_three_channels_and_unknown_names_are_refused():
    grey = PIXELS[..., :1]
    with pytest.raises(LowrankEdgeError, match="'caffe' needs RGB images .*3 channels.* have 1"):
        preprocess(grey, "caffe")
    with pytest.raises(LowrankEdgeError, match="unknown preprocessing 'tf'; choose from unit"):
        preprocess(PIXELS, "tf")
