"""DataLoader: each sample once per epoch, reproducible order and augmentation, tensors out, a background thread."""
from __future__ import annotations

import numpy as np
import pytest

from minideep.backend import gpu_available
from minideep.data import DataLoader, Dataset, load_dataset
from minideep.data import transforms as T

Tensor = pytest.importorskip("minideep.autograd").Tensor


def make(n: int = 103) -> Dataset:
    images = np.random.default_rng(0).integers(0, 256, (n, 3, 8, 8), dtype=np.uint8)
    return Dataset(images, np.arange(n), [str(k) for k in range(n)], "toy", "train", "test")  # label = index


def epoch_labels(loader: DataLoader) -> list[np.ndarray]:
    return [labels.numpy() for _, labels in loader]


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("batch_size, drop_last", [(10, False), (10, True), (103, False), (200, False)])
def test_every_sample_once_per_epoch(shuffle, batch_size, drop_last):
    loader = DataLoader(make(), batch_size, shuffle=shuffle, seed=0, drop_last=drop_last)
    batches = epoch_labels(loader)
    assert len(batches) == len(loader)
    seen = np.concatenate(batches)
    if drop_last:
        assert all(len(b) == batch_size for b in batches) and len(seen) == 103 // batch_size * batch_size
        assert len(np.unique(seen)) == len(seen)
    else:
        np.testing.assert_array_equal(np.sort(seen), np.arange(103))
    if not shuffle:
        np.testing.assert_array_equal(seen, np.arange(len(seen)))


def test_len_counts_batches():
    assert len(DataLoader(make(), 10)) == 11
    assert len(DataLoader(make(), 10, drop_last=True)) == 10
    assert len(DataLoader(make(), 1000, drop_last=True)) == 0


def test_same_seed_same_order_other_seed_or_epoch_other_order():
    a, b, c = (DataLoader(make(), 16, shuffle=True, seed=s) for s in (1, 1, 2))
    first_a, first_b, first_c = (np.concatenate(epoch_labels(x)) for x in (a, b, c))
    np.testing.assert_array_equal(first_a, first_b)
    assert not np.array_equal(first_a, first_c)
    second_a = np.concatenate(epoch_labels(a))  # the next iteration is epoch 1
    assert a.epoch == 2 and not np.array_equal(first_a, second_a)
    np.testing.assert_array_equal(second_a, a.order(1))


def test_set_epoch_resumes_order_and_augmentation_exactly():
    tf = T.Compose([T.RandomCrop(8, padding=2), T.RandomHorizontalFlip(), T.GaussianNoise(0.1)])
    run = DataLoader(make(), 16, shuffle=True, seed=5, transform=tf)
    epochs = [[(x.numpy(), y.numpy()) for x, y in run] for _ in range(3)]
    resumed = DataLoader(make(), 16, shuffle=True, seed=5, transform=tf)
    resumed.set_epoch(2)
    for (x1, y1), (x2, y2) in zip(epochs[2], [(x.numpy(), y.numpy()) for x, y in resumed]):
        np.testing.assert_array_equal(y1, y2)
        np.testing.assert_array_equal(x1, x2)
    assert not np.array_equal(epochs[0][0][0], epochs[1][0][0])


def test_batches_are_tensors_scaled_to_unit_interval_without_transform():
    ds = make()
    images, labels = next(iter(DataLoader(ds, 10)))
    assert isinstance(images, Tensor) and isinstance(labels, Tensor)
    assert images.shape == (10, 3, 8, 8) and images.dtype == np.float32 and labels.dtype == np.int64
    np.testing.assert_array_equal(images.numpy(), ds.images[:10] / np.float32(255))
    assert images.device == "cpu" and not images.requires_grad


def test_transform_gets_the_uint8_batch_and_a_generator():
    calls = []

    def spy(x, rng):
        calls.append((x.dtype, x.shape, type(rng)))
        return T.normalize(x, (0.5,), (0.25,))

    images, _ = next(iter(DataLoader(make(), 7, transform=spy, prefetch=0)))
    assert calls[0] == (np.uint8, (7, 3, 8, 8), np.random.Generator)
    assert images.dtype == np.float32 and float(images.numpy().min()) >= -2.0


def test_prefetching_thread_gives_the_same_batches_and_stops_on_break():
    tf = T.cifar_train_transform()
    ds = Dataset(np.zeros((50, 3, 32, 32), np.uint8) + np.arange(50, dtype=np.uint8)[:, None, None, None],
                 np.arange(50), ["x"], "toy", "train", "test")
    threaded = [x.numpy() for x, _ in DataLoader(ds, 8, shuffle=True, seed=3, transform=tf, prefetch=3)]
    inline = [x.numpy() for x, _ in DataLoader(ds, 8, shuffle=True, seed=3, transform=tf, prefetch=0)]
    for a, b in zip(threaded, inline, strict=True):
        np.testing.assert_array_equal(a, b)
    it = iter(DataLoader(ds, 1, prefetch=2))
    next(it)
    it.close()
    assert not it._thread.is_alive()


def test_breaking_out_of_the_loop_stops_the_worker_thread():
    import gc

    it = iter(DataLoader(make(), 1, prefetch=2))
    next(it)
    thread = it._thread
    del it  # what a ``for`` loop does after ``break``
    gc.collect()
    thread.join(timeout=2)
    assert not thread.is_alive()


def test_an_error_in_the_worker_reaches_the_training_loop():
    def broken(x, rng):
        raise RuntimeError("transform exploded")

    with pytest.raises(RuntimeError, match="transform exploded"):
        for _ in DataLoader(make(), 10, transform=broken):
            pass


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(batch_size=0), ValueError, "DataLoader: batch_size must be a positive int"),
    (dict(batch_size=4, prefetch=-1), ValueError, "prefetch must be >= 0"),
    (dict(batch_size=4, device="tpu"), ValueError, "device must be 'cpu' or 'gpu'"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        DataLoader(make(), **kwargs)


def test_bundled_set_through_the_loader_in_cifar_shape():
    ds = load_dataset("bundled", "test").as_shape(channels=3, size=32)
    loader = DataLoader(ds, 100, shuffle=True, seed=0, transform=T.Compose([T.RandomCrop(32, 4), T.ToFloat()]))
    shapes = {tuple(x.shape) for x, _ in loader}
    assert shapes == {(100, 3, 32, 32)} and len(loader) == 10


@pytest.mark.skipif(not gpu_available(), reason="no CuPy with a CUDA device")
def test_gpu_loader_keeps_the_data_on_the_device_and_matches_the_cpu():
    import cupy

    tf = T.cifar_train_transform()
    ds = Dataset(np.random.default_rng(0).integers(0, 256, (60, 3, 32, 32), dtype=np.uint8), np.arange(60),
                 ["x"], "toy", "train", "test")
    gpu = DataLoader(ds, 16, shuffle=True, seed=1, transform=tf, device="gpu")
    cpu = DataLoader(ds, 16, shuffle=True, seed=1, transform=tf, device="cpu")
    assert isinstance(gpu.images, cupy.ndarray)
    for (xg, yg), (xc, yc) in zip(gpu, cpu, strict=True):
        assert xg.device == "gpu" and isinstance(xg.data, cupy.ndarray)
        np.testing.assert_array_equal(cupy.asnumpy(yg.data), yc.numpy())
        np.testing.assert_allclose(cupy.asnumpy(xg.data), xc.numpy(), rtol=1e-6, atol=1e-6)
