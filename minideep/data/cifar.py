"""CIFAR-10 and CIFAR-100 from the official "python version" archives.

``cifar-10-python.tar.gz`` holds ``cifar-10-batches-py/data_batch_1..5``, ``test_batch``
and ``batches.meta``; ``cifar-100-python.tar.gz`` holds ``cifar-100-python/train``,
``test`` and ``meta``. Each is a Python 2 pickle of a dict whose ``"data"`` is a uint8
array of shape ``(N, 3072)``: the 1024 red, then green, then blue values of a 32 x 32
image in row-major order, so ``data.reshape(N, 3, 32, 32)`` is already ``(N, C, H, W)``.
Labels are ``"labels"`` (CIFAR-10) or ``"fine_labels"`` / ``"coarse_labels"`` (CIFAR-100).

The archive is read without unpacking it. Its MD5 is checked first, then each member's
own MD5, and only then is the member unpickled, with ``safe_pickle``.
"""
from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

from . import sources
from .dataset import Dataset
from .errors import ChecksumError, DataFormatError
from .fetch import fetch
from .safe_pickle import safe_loads

_LAYOUT = {
    # name: (folder in the archive, members of each split, meta member)
    "cifar10": (
        "cifar-10-batches-py",
        {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
        "batches.meta",
    ),
    "cifar100": ("cifar-100-python", {"train": ["train"], "test": ["test"]}, "meta"),
}


def load_cifar(
    name: str,
    split: str = "train",
    data_dir: str | Path | None = None,
    download: bool = True,
    progress: bool = True,
    label_type: str = "fine",
) -> Dataset:
    """Load CIFAR-10 or CIFAR-100 (``name`` is ``"cifar10"`` or ``"cifar100"``).

    Args:
        split: ``"train"`` (50,000 images) or ``"test"`` (10,000).
        label_type: CIFAR-100 only: ``"fine"`` (100 classes, the default) or ``"coarse"``
            (20 superclasses). Both label arrays are kept in ``Dataset.extra``.

    Returns:
        A Dataset with images ``(N, 3, 32, 32)`` uint8.
    """
    folder, members, meta_name = _LAYOUT[name]
    if label_type not in ("fine", "coarse") or (name == "cifar10" and label_type != "fine"):
        raise ValueError(f"load_dataset({name!r}): label_type must be 'fine' or 'coarse' (CIFAR-100 only), got {label_type!r}")
    found = fetch(name, "archive", data_dir, download, progress, folder=folder)
    wanted = [f"{folder}/{m}" for m in members[split] + [meta_name]]
    blobs = _read_members(found.path, wanted, found.is_folder)
    expected = sources.SOURCES[name]["archive"].members
    for member, data in blobs.items():
        _verify_member(found.path, member, data, expected)
    meta = safe_loads(blobs[wanted[-1]], f"{found.path}:{wanted[-1]}")
    batches = [safe_loads(blobs[m], f"{found.path}:{m}") for m in wanted[:-1]]
    del blobs  # the raw bytes are another 150 MB for the training set
    images = np.concatenate([_images(b, m) for b, m in zip(batches, wanted)])
    if name == "cifar10":
        labels = np.concatenate([_labels(b, "labels", m) for b, m in zip(batches, wanted)])
        return Dataset(images, labels, _names(meta, "label_names"), name, split, found.where)
    fine = np.concatenate([_labels(b, "fine_labels", m) for b, m in zip(batches, wanted)])
    coarse = np.concatenate([_labels(b, "coarse_labels", m) for b, m in zip(batches, wanted)])
    fine_names, coarse_names = _names(meta, "fine_label_names"), _names(meta, "coarse_label_names")
    use_fine = label_type == "fine"
    return Dataset(
        images,
        fine if use_fine else coarse,
        fine_names if use_fine else coarse_names,
        name,
        split,
        found.where,
        extra={"fine_labels": fine, "coarse_labels": coarse},
        meta={"fine_classes": fine_names, "coarse_classes": coarse_names, "label_type": label_type},
    )


def _read_members(path: Path, wanted: list[str], is_folder: bool) -> dict[str, bytes]:
    """The bytes of each wanted member, from the (verified) archive or the extracted folder."""
    if is_folder:
        missing = [m for m in wanted if not (path / Path(m).name).is_file()]
        if missing:
            raise DataFormatError(f"{path} lacks {', '.join(Path(m).name for m in missing)}")
        return {m: (path / Path(m).name).read_bytes() for m in wanted}
    blobs: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                if member.name in wanted and member.isfile():
                    blobs[member.name] = archive.extractfile(member).read()  # type: ignore[union-attr]
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DataFormatError(f"{path} is not a readable tar.gz archive ({type(err).__name__}: {err})") from None
    missing = [m for m in wanted if m not in blobs]
    if missing:
        raise DataFormatError(f"{path} lacks the members {', '.join(missing)}")
    return blobs


def _verify_member(path: Path, member: str, data: bytes, expected: dict[str, str]) -> None:
    """No member is unpickled unless its own MD5 is the published one."""
    if member not in expected:
        raise ChecksumError(f"{path}:{member} has no published checksum; refusing to unpickle it")
    got = hashlib.md5(data).hexdigest()
    if got != expected[member]:
        raise ChecksumError(
            f"checksum mismatch for {path}:{member}: expected md5 {expected[member]}, got {got}. "
            "The file is corrupt or was changed; delete it and try again."
        )


def _images(batch: Any, label: str) -> np.ndarray:
    data = batch.get("data") if isinstance(batch, dict) else None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataFormatError(f"{label}: expected a dict with 'data' of uint8 shape (N, 3072)")
    return data.reshape(-1, 3, 32, 32)


def _labels(batch: dict, key: str, label: str) -> np.ndarray:
    values = batch.get(key)
    if not isinstance(values, list) or len(values) != len(batch["data"]):
        raise DataFormatError(f"{label}: expected {key!r}, a list of {len(batch['data'])} ints")
    return np.asarray(values, dtype=np.int64)


def _names(meta: Any, key: str) -> list[str]:
    names = meta.get(key) if isinstance(meta, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DataFormatError(f"CIFAR meta file: expected {key!r}, a list of class names")
    return names
