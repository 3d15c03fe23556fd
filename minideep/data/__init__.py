"""Data sets, offline first: find or download, verify, parse, augment, batch.

>>> from minideep.data import load_dataset, DataLoader, transforms
>>> train = load_dataset("bundled", "train")          # ships with minideep, no network
>>> loader = DataLoader(train, batch_size=100, shuffle=True, seed=0)
>>> len(loader)
60

See ``docs/data.md`` for where data sets are looked for and how to use them offline.
"""
from . import transforms
from .bundled import load_bundled
from .chapter import ChapterData, chapter_data
from .checksum import file_hash, verify_file
from .dataset import Dataset, coursework_split
from .download import download_file
from .errors import (
    ChecksumError,
    DataError,
    DataFormatError,
    DatasetNotFoundError,
    NonFiniteDataError,
    NotEnoughSpaceError,
    UnsafePickleError,
)
from .load import DATASETS, load_dataset, load_dataset_or_bundled
from .loader import DataLoader
from .locate import cache_dir, search_roots
from .safe_pickle import safe_loads
from .transforms import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    Compose,
    GaussianNoise,
    Normalize,
    PadTo,
    RandomCrop,
    RandomHorizontalFlip,
    RepeatChannels,
    ToFloat,
)

__all__ = [
    "CIFAR10_MEAN", "CIFAR10_STD", "ChapterData", "ChecksumError", "Compose", "DATASETS", "DataError",
    "DataFormatError", "DataLoader", "Dataset", "DatasetNotFoundError", "GaussianNoise", "NonFiniteDataError",
    "NotEnoughSpaceError", "Normalize", "PadTo", "RandomCrop", "RandomHorizontalFlip", "RepeatChannels", "ToFloat",
    "UnsafePickleError", "cache_dir", "chapter_data", "coursework_split",
    "download_file", "file_hash", "load_bundled", "load_dataset", "load_dataset_or_bundled", "safe_loads",
    "search_roots", "transforms", "verify_file",
]
