"""``load_dataset``: one entry point for every data set the chapters use."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .bundled import load_bundled
from .cifar import load_cifar
from .dataset import Dataset
from .errors import DatasetNotFoundError
from .food101 import load_food101
from .mnist import load_mnist

DATASETS = ("cifar10", "cifar100", "mnist", "fashion-mnist", "food101", "bundled")

_ALIASES = {
    "cifar10": "cifar10", "cifar100": "cifar100", "mnist": "mnist",
    "fashionmnist": "fashion-mnist", "food101": "food101", "bundled": "bundled",
}


def canonical_name(name: str) -> str:
    """``"CIFAR-10"``, ``"fashion_mnist"`` ... -> the canonical names of ``DATASETS``."""
    key = str(name).lower().replace("-", "").replace("_", "")
    if key not in _ALIASES:
        raise ValueError(f"load_dataset: unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    return _ALIASES[key]


def load_dataset(
    name: str,
    split: str = "train",
    data_dir: str | Path | None = None,
    download: bool = True,
    **kwargs: Any,
) -> Dataset:
    """Load one split of a data set as uint8 images ``(N, C, H, W)`` and int64 labels.

    Files are looked for in ``data_dir``, ``$MINIDEEP_DATA``, the user cache
    (``$XDG_CACHE_HOME/minideep`` or ``~/.cache/minideep``) and known system copies, then
    downloaded from the official source (unless ``download=False`` or ``MINIDEEP_OFFLINE``
    is set). Every file is verified against its published checksum before it is parsed.

    ============== ====================== ================ ==========
    name           images                 train / test     classes
    ============== ====================== ================ ==========
    cifar10        3 x 32 x 32            50,000 / 10,000  10
    cifar100       3 x 32 x 32            50,000 / 10,000  100 (20 coarse)
    mnist          1 x 28 x 28            60,000 / 10,000  10
    fashion-mnist  1 x 28 x 28            60,000 / 10,000  10
    food101        3 x S x S (S=128)      75,750 / 25,250  101
    bundled        1 x 28 x 28            6,000 / 1,000    10 (Fashion-MNIST)
    ============== ====================== ================ ==========

    Args:
        name: one of ``DATASETS`` (case, ``-`` and ``_`` do not matter).
        split: ``"train"`` or ``"test"``.
        data_dir: a folder to look in first, and to download into.
        download: allow downloading when no local copy is found.
        **kwargs: ``progress`` (bool, default True) for all; ``label_type`` (``"fine"`` or
            ``"coarse"``) for cifar100; ``image_size`` (default 128) for food101.

    Returns:
        A ``Dataset``; its ``source`` says which file was used and how it was verified.

    Raises:
        DatasetNotFoundError: no copy found and none could be downloaded (the message lists
            what was tried and how to place the files by hand).
        ChecksumError: a file's checksum differs from the published one.
        UnsafePickleError: a CIFAR pickle tries to import anything beyond NumPy's array builders.

    Example:
        >>> train = load_dataset("cifar10", "train")  # doctest: +SKIP
        >>> train.images.shape, train.labels.dtype  # doctest: +SKIP
        ((50000, 3, 32, 32), dtype('int64'))
    """
    name = canonical_name(name)
    if split not in ("train", "test"):
        raise ValueError(f"load_dataset({name!r}): split must be 'train' or 'test', got {split!r}")
    allowed = {"progress"} | {"cifar10": {"label_type"}, "cifar100": {"label_type"}, "food101": {"image_size"}}.get(name, set())
    unknown = set(kwargs) - allowed
    if unknown:
        raise TypeError(
            f"load_dataset({name!r}): unexpected argument(s) {', '.join(sorted(unknown))}; "
            f"this data set accepts {', '.join(sorted(allowed))}"
        )
    if name == "bundled":
        return load_bundled(split)
    if name in ("cifar10", "cifar100"):
        return load_cifar(name, split, data_dir, download, **kwargs)
    if name in ("mnist", "fashion-mnist"):
        return load_mnist(name, split, data_dir, download, **kwargs)
    return load_food101(split, data_dir, download, **kwargs)


def load_dataset_or_bundled(
    name: str,
    split: str = "train",
    data_dir: str | Path | None = None,
    download: bool = True,
    **kwargs: Any,
) -> Dataset:
    """``load_dataset(name, ...)``, or the bundled set when ``name`` cannot be had.

    For chapters that must run anywhere: when no copy of ``name`` is found and none can be
    downloaded, the bundled Fashion-MNIST subset is returned instead, with
    ``meta["fallback_from"]`` set to ``name`` and ``meta["fallback_reason"]`` to the first
    line of the error, so the chapter can say which data it used. Corrupt files
    (``ChecksumError``) are not papered over: they still raise.
    """
    try:
        return load_dataset(name, split, data_dir, download, **kwargs)
    except DatasetNotFoundError as err:
        dataset = load_bundled(split)
        dataset.meta["fallback_from"] = canonical_name(name)
        dataset.meta["fallback_reason"] = str(err).splitlines()[0]
        return dataset
