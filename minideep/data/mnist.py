"""MNIST and Fashion-MNIST from the four official IDX files of each."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import sources
from .dataset import Dataset
from .errors import DataFormatError
from .fetch import fetch
from .idx import read_idx


def load_mnist(
    name: str,
    split: str = "train",
    data_dir: str | Path | None = None,
    download: bool = True,
    progress: bool = True,
) -> Dataset:
    """Load MNIST or Fashion-MNIST (``name`` is ``"mnist"`` or ``"fashion-mnist"``).

    Both have 60,000 training and 10,000 test images of 28 x 28 grey levels, 10 classes.
    Files are found (Debian's ``/usr/share/datasets/fashion-mnist`` included) or
    downloaded, and verified by MD5 (of the ``.gz`` or of its content) before parsing.

    Returns:
        A Dataset with images ``(N, 1, 28, 28)`` uint8.
    """
    found_images = fetch(name, f"{split}_images", data_dir, download, progress)
    found_labels = fetch(name, f"{split}_labels", data_dir, download, progress)
    images = read_idx(found_images.path)
    labels = read_idx(found_labels.path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataFormatError(
            f"{found_images.path}, {found_labels.path}: images {images.shape} and labels {labels.shape} do not pair up"
        )
    classes = sources.FASHION_MNIST_CLASSES if name == "fashion-mnist" else sources.MNIST_CLASSES
    where = found_images.where if found_images.path.parent == found_labels.path.parent else (
        f"{found_images.where}; {found_labels.where}"
    )
    return Dataset(images[:, None], labels.astype(np.int64), classes, name, split, where)
