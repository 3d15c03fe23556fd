"""Batch transforms: the formulas, shapes and dtypes, reproducibility, and the same results on the GPU."""
from __future__ import annotations

import numpy as np
import pytest

from minideep.backend import gpu_available
from minideep.data import transforms as T


def batch(n: int = 16, c: int = 3, h: int = 32, w: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, c, h, w), dtype=np.uint8)


def test_to_float_scales_integers_to_unit_interval_and_keeps_floats():
    x = batch()
    y = T.to_float(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_array_equal(y, x.astype(np.float32) / np.float32(255))
    assert T.to_float(np.array([0, 255], np.uint8)).tolist() == [0.0, 1.0]
    z = np.ones((2, 3), np.float64)
    assert T.to_float(z, np.float64) is z


def test_normalize_is_per_channel_and_scales_uint8_first():
    x = batch()
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.3, 0.4)
    y = T.normalize(x, mean, std)
    expected = (x / 255.0 - np.array(mean)[None, :, None, None]) / np.array(std)[None, :, None, None]
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mean, std, match", [
    ((0.5, 0.5), (1, 1, 1), "1 or C=3"),
    ((0.5,), (0.0,), "std must be positive"),
])
def test_normalize_rejects_bad_statistics(mean, std, match):
    with pytest.raises(ValueError, match=match):
        T.normalize(batch(), mean, std)


def naive_crop(x: np.ndarray, size: int, padding: int, seed: int) -> np.ndarray:
    """The definition, one image at a time, drawing offsets as random_crop does."""
    gen = np.random.default_rng(seed)
    n, c, h, w = x.shape
    padded = np.zeros((n, c, h + 2 * padding, w + 2 * padding), x.dtype)
    padded[:, :, padding:padding + h, padding:padding + w] = x
    top = gen.integers(0, h + 2 * padding - size + 1, size=n)
    left = gen.integers(0, w + 2 * padding - size + 1, size=n)
    return np.stack([padded[i, :, top[i]:top[i] + size, left[i]:left[i] + size] for i in range(n)])


@pytest.mark.parametrize("size, padding", [(32, 4), (28, 0), (24, 2), (36, 2)])
def test_random_crop_matches_the_per_image_definition(size, padding):
    x = batch(n=20)
    y = T.random_crop(x, size, padding, np.random.default_rng(7))
    assert y.shape == (20, 3, size, size) and y.dtype == np.uint8
    np.testing.assert_array_equal(y, naive_crop(x, size, padding, 7))


def test_random_crop_is_reproducible_and_varies_with_the_seed():
    x = batch(n=64)
    a = T.random_crop(x, 32, 4, np.random.default_rng(1))
    np.testing.assert_array_equal(a, T.random_crop(x, 32, 4, np.random.default_rng(1)))
    assert not np.array_equal(a, T.random_crop(x, 32, 4, np.random.default_rng(2)))
    assert T.random_crop(x, 32, 4, 1).shape == a.shape  # an int seed works too


def test_random_crop_too_large_is_an_error():
    with pytest.raises(ValueError, match=r"random_crop: crop 40x40 is larger than the padded image 34x34"):
        T.random_crop(batch(), 40, 1, 0)


def test_horizontal_flip_mirrors_about_half_the_images():
    x = batch(n=1000, h=4, w=4)
    y = T.random_horizontal_flip(x, 0.5, np.random.default_rng(0))
    flipped = np.all(y == x[..., ::-1], axis=(1, 2, 3))
    kept = np.all(y == x, axis=(1, 2, 3))
    assert np.all(flipped | kept) and 400 < flipped.sum() < 600
    np.testing.assert_array_equal(T.random_horizontal_flip(x, 0.0, 0), x)
    np.testing.assert_array_equal(T.random_horizontal_flip(x, 1.0, 0), x[..., ::-1])
    assert y.dtype == np.uint8 and y.shape == x.shape


def test_gaussian_noise_has_the_requested_scale():
    x = np.zeros((64, 3, 16, 16), np.float32)
    y = T.gaussian_noise(x, 0.1, np.random.default_rng(0))
    assert y.dtype == np.float32 and y.shape == x.shape
    assert abs(float(y.std()) - 0.1) < 0.005 and abs(float(y.mean())) < 0.005
    np.testing.assert_array_equal(y, T.gaussian_noise(x, 0.1, np.random.default_rng(0)))
    assert T.gaussian_noise(batch(), 0.1, 0).dtype == np.float32  # integers are scaled first


def test_pad_to_and_repeat_channels_turn_mnist_into_cifar_shape():
    x = np.full((5, 1, 28, 28), 9, np.uint8)
    y = T.Compose([T.PadTo(32), T.RepeatChannels(3)])(x)
    assert y.shape == (5, 3, 32, 32) and y.dtype == np.uint8
    assert y[:, :, :2].max() == 0 and y[:, :, 30:].max() == 0 and y[:, :, :, :2].max() == 0
    assert y[:, :, 2:30, 2:30].min() == 9
    with pytest.raises(ValueError, match="pad_to: images of 28x28 are larger than size=20"):
        T.pad_to(x, 20)
    with pytest.raises(ValueError, match="repeat_channels: can only repeat a 1-channel batch"):
        T.repeat_channels(np.zeros((1, 2, 4, 4), np.uint8), 3)


def test_cifar_pipeline_shapes_dtypes_and_reproducibility():
    x = batch(n=32)
    tf = T.cifar_train_transform()
    a, b = tf(x, np.random.default_rng(5)), tf(x, np.random.default_rng(5))
    assert a.shape == x.shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    ev = T.cifar_eval_transform()(x)
    np.testing.assert_allclose(ev, T.normalize(T.to_float(x), T.CIFAR10_MEAN, T.CIFAR10_STD))


@pytest.mark.parametrize("fn", [T.normalize, T.random_crop, T.random_horizontal_flip, T.pad_to])
def test_transforms_reject_a_single_image(fn):
    args = {T.normalize: ((0.5,), (0.5,)), T.random_crop: (2,), T.random_horizontal_flip: (), T.pad_to: (40,)}[fn]
    with pytest.raises(ValueError, match=rf"{fn.__name__}: expected a batch of shape \(N, C, H, W\), got shape \(3, 32, 32\)"):
        fn(np.zeros((3, 32, 32), np.uint8), *args)


@pytest.mark.skipif(not gpu_available(), reason="no CuPy with a CUDA device")
def test_transforms_give_the_same_batches_on_the_gpu():
    import cupy

    x = batch(n=50)
    tf = T.cifar_train_transform()
    cpu = tf(x, np.random.default_rng(3))
    gpu = tf(cupy.asarray(x), np.random.default_rng(3))
    assert isinstance(gpu, cupy.ndarray) and gpu.dtype == np.float32
    np.testing.assert_allclose(cupy.asnumpy(gpu), cpu, rtol=1e-6, atol=1e-6)
    noisy = T.gaussian_noise(cupy.zeros((8, 3, 8, 8), cupy.float32), 0.5, np.random.default_rng(0))
    assert isinstance(noisy, cupy.ndarray) and 0.3 < float(noisy.std()) < 0.7
    np.testing.assert_array_equal(
        cupy.asnumpy(noisy), cupy.asnumpy(T.gaussian_noise(cupy.zeros((8, 3, 8, 8), cupy.float32), 0.5, np.random.default_rng(0)))
    )
