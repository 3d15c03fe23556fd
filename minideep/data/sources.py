"""Where each data set comes from: official URLs, file names and published checksums.

Every value here is copied from the data set's own page or from torchvision's loaders
(see ``shared/reference/paper-setups-and-numbers.md`` section 5). ``payload_md5`` is the
MD5 of a ``.gz`` file's decompressed content (torchvision's ``raw_data`` list); it lets
Debian's repacked Fashion-MNIST files and hand-unzipped copies verify too.

The tests replace entries of ``SOURCES`` with small files of their own.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RemoteFile:
    """One file of an official release.

    Attributes:
        filename: the file's name in the release (and in the cache).
        md5: the published MD5 of the file.
        urls: mirrors, tried in order.
        payload_md5: MD5 of the decompressed content, for ``.gz`` files (optional).
        members: archive member path -> MD5, checked again before a member is unpickled.
    """

    filename: str
    md5: str
    urls: tuple[str, ...]
    payload_md5: str | None = None
    members: dict[str, str] = field(default_factory=dict)


_TORONTO = "https://www.cs.toronto.edu/~kriz/"
_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",  # first: yann.lecun.com is often down
    "http://yann.lecun.com/exdb/mnist/",
)
_FASHION_MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"


def _idx_files(mirrors: tuple[str, ...], sums: dict[str, tuple[str, str]]) -> dict[str, RemoteFile]:
    """The four IDX files of MNIST or Fashion-MNIST, keyed ``train_images`` ... ``test_labels``."""
    names = {
        "train_images": "train-images-idx3-ubyte.gz",
        "train_labels": "train-labels-idx1-ubyte.gz",
        "test_images": "t10k-images-idx3-ubyte.gz",
        "test_labels": "t10k-labels-idx1-ubyte.gz",
    }
    return {
        key: RemoteFile(
            filename=name,
            md5=sums[key][0],
            payload_md5=sums[key][1],
            urls=tuple(m + name for m in mirrors),
        )
        for key, name in names.items()
    }


SOURCES: dict[str, dict[str, RemoteFile]] = {
    "cifar10": {
        "archive": RemoteFile(
            filename="cifar-10-python.tar.gz",
            md5="c58f30108f718f92721af3b95e74349a",
            urls=(_TORONTO + "cifar-10-python.tar.gz",),
            members={
                "cifar-10-batches-py/data_batch_1": "c99cafc152244af753f735de768cd75f",
                "cifar-10-batches-py/data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
                "cifar-10-batches-py/data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
                "cifar-10-batches-py/data_batch_4": "634d18415352ddfa80567beed471001a",
                "cifar-10-batches-py/data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
                "cifar-10-batches-py/test_batch": "40351d587109b95175f43aff81a1287e",
                "cifar-10-batches-py/batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
            },
        )
    },
    "cifar100": {
        "archive": RemoteFile(
            filename="cifar-100-python.tar.gz",
            md5="eb9058c3a382ffc7106e4002c42a8d85",
            urls=(_TORONTO + "cifar-100-python.tar.gz",),
            members={
                "cifar-100-python/train": "16019d7e3df5f24257cddd939b257f8d",
                "cifar-100-python/test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
                "cifar-100-python/meta": "7973b15100ade9c7d40fb424638fde48",
            },
        )
    },
    "mnist": _idx_files(
        _MNIST_MIRRORS,
        {
            "train_images": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb"),
            "train_labels": ("d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624"),
            "test_images": ("9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea"),
            "test_labels": ("ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637"),
        },
    ),
    "fashion-mnist": _idx_files(
        (_FASHION_MIRROR,),
        {
            "train_images": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
            "train_labels": ("25c81989df183df01b3e8a0aad5dffbe", "9018921c3c673c538a1fc5bad174d6f9"),
            "test_images": ("bef4ecab320f06d8554ea6380940ec79", "8181f5470baa50b63fa0f6fddb340f0a"),
            "test_labels": ("bb300cfdad3c16e7a12a480ee83cd310", "15d484375f8d13e6eb1aabb0c3f46965"),
        },
    ),
    "food101": {
        "archive": RemoteFile(
            filename="food-101.tar.gz",
            md5="85eeb15f3717b99a5da872d97d918f87",
            urls=("http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz",),
        )
    },
}

#: Other folder names under which a root may hold a data set's files (torchvision's layout
#: first, so a student's existing torchvision downloads are found without copying).
FOLDER_ALIASES: dict[str, tuple[str, ...]] = {
    "cifar10": ("cifar10", "cifar-10", ""),
    "cifar100": ("cifar100", "cifar-100", ""),
    "mnist": ("mnist", "MNIST/raw", ""),
    "fashion-mnist": ("fashion-mnist", "FashionMNIST/raw", ""),
    "food101": ("food101", "food-101", ""),
}

#: System-wide copies installed by a package manager (checked after the user's folders).
SYSTEM_DIRS: dict[str, tuple[str, ...]] = {
    "fashion-mnist": ("/usr/share/datasets/fashion-mnist",),
}

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
MNIST_CLASSES = tuple(str(d) for d in range(10))
