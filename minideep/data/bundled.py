"""The bundled offline set: a real, balanced subset of Fashion-MNIST inside the package.

6,000 training images (600 per class) and 1,000 test images (100 per class), chosen by
``scripts/make_bundled.py`` from the official files with a fixed seed. The ``.npz`` file's
SHA-256 is recorded in ``bundled/bundled.json`` and checked on every load. Fashion-MNIST is
(c) 2017 Zalando SE under the MIT licence; see ``bundled/LICENSE-fashion-mnist.txt``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import sources
from .checksum import verify_file
from .dataset import Dataset
from .errors import DataFormatError

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
BUNDLED_FILE = BUNDLED_DIR / "fashion_mnist_subset.npz"
BUNDLED_INFO = BUNDLED_DIR / "bundled.json"


def bundled_info() -> dict:
    """The record written by ``scripts/make_bundled.py``: checksum, sizes, seed, provenance."""
    return json.loads(BUNDLED_INFO.read_text())


def load_bundled(split: str = "train") -> Dataset:
    """Load the bundled Fashion-MNIST subset (no network, no files outside the package).

    Returns:
        A Dataset named ``"bundled"`` with images ``(N, 1, 28, 28)`` uint8 and the ten
        Fashion-MNIST classes; ``extra["source_indices"]`` gives each image's index in the
        official split it was taken from.
    """
    info = bundled_info()
    how = verify_file(
        BUNDLED_FILE,
        sha256=info["sha256"],
        advice="The package is damaged; reinstall minideep or run scripts/make_bundled.py.",
    )
    with np.load(BUNDLED_FILE, allow_pickle=False) as npz:
        try:
            images, labels = npz[f"{split}_images"], npz[f"{split}_labels"]
            indices = npz[f"{split}_indices"]
        except KeyError as err:
            raise DataFormatError(f"{BUNDLED_FILE} lacks {err}") from None
    per_class = info["per_class"][split]
    return Dataset(
        images,
        labels.astype(np.int64),
        sources.FASHION_MNIST_CLASSES,
        "bundled",
        split,
        f"{BUNDLED_FILE} (bundled offline set: Fashion-MNIST {split} subset, {per_class} per class, {how})",
        extra={"source_indices": indices.astype(np.int64)},
    )
