"""Dataset: subsets balanced across classes, validation splits, the coursework split."""
from __future__ import annotations

import numpy as np
import pytest

from minideep.data import Dataset, coursework_split


def make(n: int = 1000, n_classes: int = 10, seed: int = 0, hw: int = 2) -> Dataset:
    rng = np.random.default_rng(seed)
    images = np.arange(n, dtype=np.int64)[:, None, None, None].astype(np.uint8) + np.zeros((1, 1, hw, hw), np.uint8)
    labels = rng.integers(0, n_classes, n)
    # The index of each sample, so a test can tell which samples a split took.
    return Dataset(images, labels, [f"c{k}" for k in range(n_classes)], "toy", "train", "made in a test",
                   extra={"index": np.arange(n)})


def test_subset_is_balanced_reproducible_and_in_original_order():
    ds = make()
    a, b = ds.subset(200, seed=1), ds.subset(200, seed=1)
    np.testing.assert_array_equal(a.extra["index"], b.extra["index"])
    np.testing.assert_array_equal(a.class_counts(), np.full(10, 20))
    assert np.all(np.diff(a.extra["index"]) > 0)
    np.testing.assert_array_equal(a.labels, ds.labels[a.extra["index"]])
    assert not np.array_equal(ds.subset(200, seed=2).extra["index"], a.extra["index"])


def test_subset_spreads_the_remainder_over_the_first_classes():
    np.testing.assert_array_equal(make().subset(23).class_counts(), [3, 3, 3, 2, 2, 2, 2, 2, 2, 2])


def test_subset_too_large_for_a_class_names_the_class():
    ds = make(n=50)
    with pytest.raises(ValueError, match=r"Dataset.subset: n=50 needs 5 samples of class \d"):
        ds.subset(50)
    with pytest.raises(ValueError, match="n must be in 1..50"):
        ds.subset(51)


def test_split_validation_is_disjoint_complete_and_reproducible():
    ds = make()
    train, val = ds.split_validation(100, seed=3)
    assert len(train) == 900 and len(val) == 100
    together = np.concatenate([train.extra["index"], val.extra["index"]])
    np.testing.assert_array_equal(np.sort(together), np.arange(1000))
    assert np.all(np.diff(val.extra["index"]) > 0) and np.all(np.diff(train.extra["index"]) > 0)
    np.testing.assert_array_equal(ds.split_validation(100, seed=3)[1].extra["index"], val.extra["index"])


def test_split_validation_with_indices_and_stratified():
    ds = make()
    train, val = ds.split_validation(np.array([5, 1, 999]))
    np.testing.assert_array_equal(val.extra["index"], [1, 5, 999])
    assert len(train) == 997
    _, strat = ds.split_validation(50, seed=0, stratified=True)
    np.testing.assert_array_equal(strat.class_counts(), np.full(10, 5))
    with pytest.raises(ValueError, match="out of range"):
        ds.split_validation(np.array([1000]))
    with pytest.raises(ValueError, match="repeat"):
        ds.split_validation(np.array([3, 3]))


def test_coursework_split_reproduces_the_vgg_coursework_exactly():
    ds = make(n=50000, n_classes=100, hw=1)
    train, val = coursework_split(ds)
    rng = np.random.RandomState(seed=0)  # the coursework's own lines
    train_idx = rng.choice(range(50000), size=47500, replace=False)
    np.testing.assert_array_equal(train.extra["index"], train_idx)
    np.testing.assert_array_equal(val.extra["index"], np.setdiff1d(np.arange(50000), train_idx))
    assert len(train) == 47500 and len(val) == 2500
    np.testing.assert_array_equal(train.labels, ds.labels[train_idx])


def test_take_carries_extra_arrays_and_accepts_masks():
    ds = make(n=20)
    part = ds.take(ds.labels == 3)
    assert np.all(part.labels == 3)
    np.testing.assert_array_equal(part.extra["index"], np.flatnonzero(ds.labels == 3))
    with pytest.raises(TypeError, match="Dataset.take"):
        ds.take(np.array([0.5]))


def test_as_shape_pads_centred_and_repeats_channels():
    ds = Dataset(np.full((4, 1, 28, 28), 7, np.uint8), np.arange(4), list("abcd"), "toy", "train", "test")
    out = ds.as_shape(channels=3, size=32)
    assert out.images.shape == (4, 3, 32, 32) and out.images.dtype == np.uint8
    assert out.images[:, :, 2:30, 2:30].min() == 7 and out.images.sum() == 7 * 4 * 3 * 28 * 28
    np.testing.assert_array_equal(out.images[:, 0], out.images[:, 2])


@pytest.mark.parametrize("images, labels, match", [
    (np.zeros((3, 28, 28), np.uint8), np.zeros(3), "uint8 of shape"),
    (np.zeros((3, 1, 2, 2), np.float32), np.zeros(3), "uint8 of shape"),
    (np.zeros((3, 1, 2, 2), np.uint8), np.zeros(4), "labels shape"),
])
def test_dataset_rejects_bad_arrays(images, labels, match):
    with pytest.raises(ValueError, match=match):
        Dataset(images, labels, ["a"], "toy", "train", "test")
