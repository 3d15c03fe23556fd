"""The data a chapter trains on: which data set, its subsets, their size, normalisation and augmentation.

``chapter_data`` resolves ``--dataset``/``--data-dir`` into train/validation/test splits
with the right transforms and says which data set it used (in ``description``, saved to
results.json, and in ``notice``, printed).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .dataset import Dataset, coursework_split
from .load import load_dataset, load_dataset_or_bundled
from .loader import DataLoader
from .transforms import (
    CIFAR10_MEAN, CIFAR10_STD, Compose, Normalize, RandomCrop, RandomHorizontalFlip, ToFloat, channel_statistics,
)

# Per-channel statistics of the training images, for normalisation.
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)


@dataclass
class ChapterData:
    """A chapter's splits and transforms, and a record of where they came from.

    Attributes:
        train, val, test: the splits (``val`` may be None).
        train_transform, eval_transform: batch transforms for the loaders.
        description: saved in results.json (name, source, sizes, fallback reason).
        notice: a line to print (for example that the bundled set stands in), or None.
    """

    train: Dataset
    val: Dataset | None
    test: Dataset
    train_transform: Any
    eval_transform: Any
    description: dict[str, Any] = field(default_factory=dict)
    notice: str | None = None

    def loaders(self, batch_size: int, seed: int, device: str = "cpu", eval_batch_size: int | None = None):
        """(train, val, test) DataLoaders; the training order and augmentation follow ``seed``."""
        eval_bs = eval_batch_size or batch_size
        train = DataLoader(self.train, batch_size, shuffle=True, seed=seed, transform=self.train_transform, device=device)
        val = DataLoader(self.val, eval_bs, transform=self.eval_transform, device=device) if self.val is not None else None
        test = DataLoader(self.test, eval_bs, transform=self.eval_transform, device=device)
        return train, val, test


def chapter_data(
    requested: str,
    paper_dataset: str,
    preset: str,
    *,
    data_dir: str | Path | None = None,
    n_train: int | None = None,
    n_val: int | None = None,
    n_test: int | None = None,
    shape: tuple[int | None, int] | None = None,
    grow: str = "pad",
    augment: bool = False,
    coursework: bool = False,
    seed: int = 0,
) -> ChapterData:
    """Pick and prepare a chapter's data.

    ``requested="auto"`` means: the paper preset uses ``paper_dataset`` (found locally or
    downloaded, else the bundled set with a notice); the smoke and quick presets use the
    bundled Fashion-MNIST subset, the set their numbers are calibrated on. Any other name
    is loaded as asked, and a missing data set is an error that names the options.

    Args:
        requested: ``--dataset`` (``"auto"`` or a name known to ``load_dataset``).
        paper_dataset: the paper's data set, e.g. ``"cifar100"``.
        preset: ``"smoke"``, ``"quick"`` or ``"paper"``.
        data_dir: ``--data-dir``.
        n_train, n_val, n_test: class-balanced subsets of that many images (None: all).
            The validation set is carved out of the training split first.
        shape: ``(channels, size)`` to resize the images to (e.g. ``(3, 32)``: grayscale repeated,
            28 x 28 padded to 32 x 32; ``channels=None`` keeps them), see
            :func:`minideep.data.transforms.resize`. Images of another size are normalised
            with the resized training set's statistics.
        grow: how smaller images reach ``size``: ``"pad"`` (zeros) or ``"repeat"`` (upsampled).
        augment: random crop with 4-pixel zero padding and horizontal flip for training.
        coursework: split CIFAR-100 exactly as the coursework did (47,500 / 2,500, seed 0).
        seed: seed of the subsets.
    """
    notice = None
    if requested == "auto" and preset != "paper":
        name = "bundled"
        notice = (f"Data: the bundled Fashion-MNIST subset (the {preset} preset's data set; "
                  f"use --dataset {paper_dataset} for the paper's)")
        if data_dir is not None:
            notice += (f"; --data-dir {data_dir} is not read: the {preset} preset uses the bundled set unless "
                       "--dataset NAME asks for another")
        train_full, test = load_dataset(name, "train"), load_dataset(name, "test")
    elif requested == "auto":
        train_full = load_dataset_or_bundled(paper_dataset, "train", data_dir)
        test = load_dataset_or_bundled(paper_dataset, "test", data_dir)
        if "fallback_from" in train_full.meta:
            notice = (f"Data: {paper_dataset} could not be found or downloaded "
                      f"({train_full.meta['fallback_reason']}"
                      + (f"; nothing usable in --data-dir {data_dir}" if data_dir is not None else "")
                      + "); using the bundled Fashion-MNIST subset instead")
    else:
        train_full, test = load_dataset(requested, "train", data_dir), load_dataset(requested, "test", data_dir)

    if coursework and train_full.name == "cifar100" and len(train_full) == 50000:
        train, val = coursework_split(train_full, 47500, 0)
    elif n_val:
        train, val = train_full.split_validation(n_val, seed=seed, stratified=True)
    else:
        train, val = train_full, None
    if n_train and n_train < len(train):
        train = train.subset(n_train, seed)
    if n_test and n_test < len(test):
        test = test.subset(n_test, seed)
    loaded_shape = list(train.images.shape[1:])
    if shape is not None:
        channels, size = shape
        channels = channels or train.images.shape[1]
        train, test = train.as_shape(channels, size, grow), test.as_shape(channels, size, grow)
        val = val.as_shape(channels, size, grow) if val is not None else None

    if train.name.startswith("cifar") and loaded_shape[-1] == train.images.shape[-1]:
        mean, std = CIFAR10_MEAN, CIFAR10_STD  # the coursework reused CIFAR-10's constants for CIFAR-100
    else:
        mean, std = channel_statistics(train.images)
    steps = [RandomCrop(train.images.shape[-1], padding=4), RandomHorizontalFlip()] if augment else []
    description = {
        "name": train.name,
        "source": train.source,
        "n_train": len(train),
        "n_val": 0 if val is None else len(val),
        "n_test": len(test),
        "image_shape": list(train.images.shape[1:]),
        "classes": len(train.classes),
        "normalisation": {"mean": list(mean), "std": list(std)},
        "augmentation": "random crop (padding 4) + horizontal flip" if augment else "none",
    }
    if loaded_shape[-1] > train.images.shape[-1] or (grow == "repeat" and loaded_shape[-1] != train.images.shape[-1]):
        description["resized_from"] = loaded_shape  # pooled or upsampled (zero padding alone is not noted)
    if "fallback_from" in train.meta:
        description["fallback_from"] = train.meta["fallback_from"]
    return ChapterData(
        train=train, val=val, test=test,
        train_transform=Compose(steps + [ToFloat(), Normalize(mean, std)]),
        eval_transform=Compose([ToFloat(), Normalize(mean, std)]),
        description=description, notice=notice,
    )
