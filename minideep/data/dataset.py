"""``Dataset``: one split of a data set as two arrays, and the ways to cut it.

A data set lives as one uint8 array of images ``(N, C, H, W)`` and one int64 array of
labels ``(N,)``; every subset, validation split or batch is an index into them, never a
Python loop over samples.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from .transforms import repeat_channels, resize


@dataclass
class Dataset:
    """One split of a data set, held in memory as arrays.

    Attributes:
        images: uint8 array, shape ``(N, C, H, W)``.
        labels: int64 array, shape ``(N,)``, values in ``0 .. len(classes) - 1``.
        classes: class names; ``classes[k]`` names label ``k``.
        name: the data set (``"cifar10"``, ``"bundled"``, ...).
        split: ``"train"`` or ``"test"`` (or e.g. ``"train[47500]"`` after a split).
        source: where the arrays came from: path, how it was found, how it was verified.
        extra: further per-sample arrays that follow every subset (e.g. CIFAR-100's
            ``coarse_labels``).
        meta: anything else (e.g. ``coarse_classes``).

    Example:
        >>> ds = load_dataset("bundled")  # doctest: +SKIP
        >>> ds.images.shape, ds.labels[:3], ds.classes[ds.labels[0]]  # doctest: +SKIP
        ((6000, 1, 28, 28), array([9, 0, 0]), 'Ankle boot')
    """

    images: np.ndarray
    labels: np.ndarray
    classes: Sequence[str]
    name: str
    split: str
    source: str
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise ValueError(
                f"Dataset: images must be uint8 of shape (N, C, H, W), got {self.images.dtype} {self.images.shape}"
            )
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.labels.shape != (len(self.images),):
            raise ValueError(f"Dataset: labels shape {self.labels.shape} does not match {len(self.images)} images")
        for key, values in self.extra.items():
            if len(values) != len(self.images):
                raise ValueError(f"Dataset: extra array {key!r} has {len(values)} rows, expected {len(self.images)}")
        self.classes = list(self.classes)

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        n, c, h, w = self.images.shape
        return (
            f"Dataset({self.name!r}, split={self.split!r}, {n} images {c}x{h}x{w}, "
            f"{len(self.classes)} classes, source={self.source!r})"
        )

    @property
    def coarse_labels(self) -> np.ndarray | None:
        """CIFAR-100's 20 superclass labels (None for other data sets)."""
        return self.extra.get("coarse_labels")

    @property
    def coarse_classes(self) -> list[str] | None:
        """CIFAR-100's 20 superclass names (None for other data sets)."""
        return self.meta.get("coarse_classes")

    def class_counts(self) -> np.ndarray:
        """How many samples each class has: ``counts[k] = #{i : labels[i] = k}``."""
        return np.bincount(self.labels, minlength=len(self.classes))

    def take(self, indices: Any, split: str | None = None) -> "Dataset":
        """The samples at ``indices`` (in that order), as a new Dataset.

        Args:
            indices: integer array or boolean mask over ``range(len(self))``.
            split: the new ``split`` label (default: ``"<split>[<n>]"``).
        """
        idx = np.asarray(indices)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"Dataset.take: indices must be a 1-d integer array or mask, got {idx.dtype} {idx.shape}")
        if len(idx) and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise ValueError(f"Dataset.take: indices out of range for {len(self)} samples")
        return replace(
            self,
            images=self.images[idx],
            labels=self.labels[idx],
            split=split or f"{self.split}[{len(idx)}]",
            extra={k: v[idx] for k, v in self.extra.items()},
        )

    def subset(self, n: int, seed: int = 0) -> "Dataset":
        """``n`` samples balanced across classes, drawn without replacement under ``seed``.

        Each class gets ``n // K`` samples (``K`` classes); the first ``n % K`` classes get
        one more. The result keeps the original order of the samples, so it is the same
        for the same ``(n, seed)`` and a smaller ``n`` never reorders a preset.

        Raises:
            ValueError: ``n`` is larger than the data set or a class has too few samples.
        """
        if not 0 < n <= len(self):
            raise ValueError(f"Dataset.subset: n must be in 1..{len(self)}, got {n}")
        idx = np.sort(self.balanced_indices(n, seed, "Dataset.subset"))
        return self.take(idx, split=f"{self.split}[subset {n}, seed {seed}]")

    def balanced_indices(self, n: int, seed: int = 0, caller: str = "Dataset.balanced_indices") -> np.ndarray:
        """``n // K`` random indices of each class (one more for the first ``n % K`` classes).

        Grouped by class, in the order drawn; ``subset`` sorts them.
        """
        n_classes = len(self.classes)
        per_class = np.full(n_classes, n // n_classes)
        per_class[: n % n_classes] += 1
        counts = self.class_counts()
        short = np.flatnonzero(counts < per_class)
        if len(short):
            k = short[0]
            raise ValueError(
                f"{caller}: n={n} needs {per_class[k]} samples of class {k} ({self.classes[k]!r}) but it has {counts[k]}"
            )
        rng = np.random.default_rng(seed)
        return np.concatenate(
            [rng.choice(np.flatnonzero(self.labels == k), size=per_class[k], replace=False) for k in range(n_classes)]
        )

    def split_validation(
        self, n_val: int | Sequence[int] | np.ndarray, seed: int = 0, stratified: bool = False
    ) -> tuple["Dataset", "Dataset"]:
        """Carve a validation set out of this one: ``(train, val)``, both in index order.

        Args:
            n_val: how many samples to hold out, or the exact indices of the held-out ones.
            seed: seed of the random choice (unused when indices are given).
            stratified: hold out ``n_val // K`` samples of each class (as in ``subset``)
                instead of a plain random choice.

        For the exact split of the VGG coursework (CIFAR-100 47,500 / 2,500), use
        ``coursework_split``.
        """
        if np.ndim(n_val) == 0:
            n = int(n_val)  # type: ignore[arg-type]
            if not 0 < n < len(self):
                raise ValueError(f"Dataset.split_validation: n_val must be in 1..{len(self) - 1}, got {n}")
            if stratified:
                val_idx = self.balanced_indices(n, seed, "Dataset.split_validation")
            else:
                val_idx = np.random.default_rng(seed).choice(len(self), size=n, replace=False)
        else:
            val_idx = np.asarray(n_val)
            if not np.issubdtype(val_idx.dtype, np.integer) or val_idx.ndim != 1:
                raise TypeError(f"Dataset.split_validation: indices must be 1-d integers, got {val_idx.dtype} {val_idx.shape}")
            if len(val_idx) and (val_idx.min() < 0 or val_idx.max() >= len(self)):
                raise ValueError(f"Dataset.split_validation: indices out of range 0..{len(self) - 1}")
        mask = np.zeros(len(self), dtype=bool)
        mask[val_idx] = True
        if mask.sum() != len(val_idx):
            raise ValueError("Dataset.split_validation: validation indices repeat")
        train_idx = np.flatnonzero(~mask)
        return (
            self.take(train_idx, split=f"{self.split}[train {len(train_idx)}]"),
            self.take(np.flatnonzero(mask), split=f"{self.split}[val {int(mask.sum())}]"),
        )

    def as_shape(self, channels: int, size: int, grow: str = "pad") -> "Dataset":
        """The same samples resized to ``size x size`` and repeated to ``channels``.

        For running a CIFAR-shaped model (3 x 32 x 32) on 28 x 28 grayscale data such as the
        bundled set; done once on the uint8 arrays rather than on every batch. Smaller
        images are zero-padded, centred (or upsampled, ``grow="repeat"``), larger ones
        average-pooled: see :func:`minideep.data.transforms.resize`.
        """
        images = resize(self.images, size, grow)
        if images.shape[1] != channels:
            images = repeat_channels(images, channels)
        return replace(self, images=np.ascontiguousarray(images))


def coursework_split(dataset: Dataset, n_train: int = 47500, seed: int = 0) -> tuple[Dataset, Dataset]:
    """The train/validation split of the MLP coursework (VGG08/VGG38 on CIFAR-100).

    Exactly the coursework's ``np.random.RandomState(seed).choice(range(50000), size=47500,
    replace=False)`` for the training indices (in the order ``choice`` returns them), and
    the remaining 2,500 in index order for validation.

    Returns:
        ``(train, val)``.

    Example:
        >>> train, val = coursework_split(load_dataset("cifar100"))  # doctest: +SKIP
        >>> len(train), len(val)  # doctest: +SKIP
        (47500, 2500)
    """
    if not 0 < n_train < len(dataset):
        raise ValueError(f"coursework_split: n_train must be in 1..{len(dataset) - 1}, got {n_train}")
    train_idx = np.random.RandomState(seed).choice(len(dataset), size=n_train, replace=False)
    mask = np.ones(len(dataset), dtype=bool)
    mask[train_idx] = False
    return (
        dataset.take(train_idx, split=f"{dataset.split}[coursework train {n_train}, seed {seed}]"),
        dataset.take(np.flatnonzero(mask), split=f"{dataset.split}[coursework val {int(mask.sum())}, seed {seed}]"),
    )
