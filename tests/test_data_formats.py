"""Parsing CIFAR-10/100, MNIST and Food-101 from small files written in the official formats.

The helpers here write those files (the other ``test_data_*`` modules import them); the
tests check that ``load_dataset`` reads back exactly what was written. No network: the
registry of official files (``sources.SOURCES``) is pointed at the files written here.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from minideep.data import download, load_dataset, sources
from minideep.data.sources import RemoteFile

# ------------------------------------------------------------------------------------------
# Helpers: isolation and the official formats
# ------------------------------------------------------------------------------------------


def isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point the user cache at ``tmp_path/cache``, hide system copies, forbid the network."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("MINIDEEP_DATA", raising=False)
    monkeypatch.delenv("MINIDEEP_OFFLINE", raising=False)
    monkeypatch.setattr(sources, "SYSTEM_DIRS", {})
    real_urlopen = download.urlopen

    def local_only(url: str, *args, **kwargs):
        if not url.startswith("file:"):
            raise urllib.error.URLError(f"network disabled in tests ({url})")
        return real_urlopen(url, *args, **kwargs)

    monkeypatch.setattr(download, "urlopen", local_only)
    return tmp_path / "xdg" / "minideep"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    return isolate(monkeypatch, tmp_path)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes pickles the way Python 2's cPickle wrote the CIFAR files (protocol 2).

    Python 2 ``str`` became ``BINSTRING`` opcodes (no ``_codecs.encode`` as Python 3 writes
    for bytes), and NumPy arrays are rebuilt by ``numpy.core.multiarray._reconstruct``.
    """

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]
    _reconstruct = np.ndarray(0).__reduce__()[0]

    def save_py2_str(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str

    def save_global(self, obj, name=None):
        if obj is self._reconstruct:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)

    dispatch[type(_reconstruct)] = save_global


def py2_pickle(obj) -> bytes:
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def write_tar_gz(path: Path, members: dict[str, bytes]) -> bytes:
    """A tar.gz with a top folder entry and the given members; returns the archive's bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for folder in sorted({name.split("/")[0] for name in members}):
            info = tarfile.TarInfo(folder)
            info.type = tarfile.DIRTYPE
            archive.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def cifar_members(name: str, rng: np.random.Generator, n: int = 6) -> tuple[dict[str, bytes], dict]:
    """The members of a tiny CIFAR archive, and the arrays each split should parse to."""
    expected: dict = {}
    if name == "cifar10":
        top, classes = "cifar-10-batches-py", [f"class{k}" for k in range(10)]
        members = {f"{top}/batches.meta": py2_pickle({"num_cases_per_batch": n, "label_names": classes, "num_vis": 3072})}
        for split, batch_names in (("train", [f"data_batch_{i}" for i in range(1, 6)]), ("test", ["test_batch"])):
            images, labels = [], []
            for b in batch_names:
                data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
                y = [int(v) for v in rng.integers(0, 10, n)]
                members[f"{top}/{b}"] = py2_pickle(
                    {"batch_label": f"{b} of 5", "labels": y, "data": data, "filenames": [f"img{i}.png" for i in range(n)]}
                )
                images.append(data.reshape(n, 3, 32, 32))
                labels += y
            expected[split] = (np.concatenate(images), np.array(labels))
        members[f"{top}/readme.html"] = b"<html>CIFAR-10</html>"
        expected["classes"] = classes
    else:
        top = "cifar-100-python"
        fine, coarse = [f"fine{k}" for k in range(100)], [f"coarse{k}" for k in range(20)]
        members = {f"{top}/meta": py2_pickle({"fine_label_names": fine, "coarse_label_names": coarse})}
        for split in ("train", "test"):
            data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
            f_labels = [int(v) for v in rng.integers(0, 100, n)]
            c_labels = [v // 5 for v in f_labels]
            members[f"{top}/{split}"] = py2_pickle(
                {"filenames": [f"x{i}.png" for i in range(n)], "batch_label": f"{split} batch",
                 "fine_labels": f_labels, "coarse_labels": c_labels, "data": data}
            )
            expected[split] = (data.reshape(n, 3, 32, 32), np.array(f_labels), np.array(c_labels))
        members[f"{top}/file.txt~"] = b""
        expected["classes"], expected["coarse_classes"] = fine, coarse
    return members, expected


def register(monkeypatch: pytest.MonkeyPatch, name: str, files: dict[str, RemoteFile]) -> None:
    """Make ``files`` the official release of ``name`` for this test."""
    monkeypatch.setitem(sources.SOURCES, name, files)


def register_cifar(monkeypatch, name: str, members: dict[str, bytes], archive: bytes, urls=()) -> None:
    filename = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}[name]
    checked = {m: md5(d) for m, d in members.items() if not m.endswith(("readme.html", "file.txt~"))}
    register(monkeypatch, name, {"archive": RemoteFile(filename, md5(archive), tuple(urls), members=checked)})


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file: magic 00 00 08 <ndim>, big-endian sizes, then the uint8 values."""
    return bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


MNIST_NAMES = {
    "train_images": "train-images-idx3-ubyte.gz", "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz", "test_labels": "t10k-labels-idx1-ubyte.gz",
}


def write_mnist(folder: Path, rng: np.random.Generator, n_train: int = 20, n_test: int = 10) -> tuple[dict, dict]:
    """The four .gz IDX files in ``folder``; returns ``{key: RemoteFile}`` and the arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": np.arange(n_train, dtype=np.uint8) % 10,
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": np.arange(n_test, dtype=np.uint8)[::-1] % 10,
    }
    files = {}
    for key, name in MNIST_NAMES.items():
        raw = idx_bytes(arrays[key])
        packed = gzip.compress(raw, mtime=0)
        (folder / name).write_bytes(packed)
        files[key] = RemoteFile(name, md5(packed), ("file://" + str(folder / name),), payload_md5=md5(raw))
    return files, arrays


FOOD_CLASSES = ["apple_pie", "beignets", "pho"]
FOOD_COLORS = {"apple_pie": (200, 40, 40), "beignets": (40, 200, 40), "pho": (40, 40, 200)}


def write_food101(root: Path, n_train: int = 2, n_test: int = 1) -> Path:
    """A tiny ``food-101/`` folder in the official layout: JPEGs of one colour per class."""
    from PIL import Image

    top = root / "food-101"
    lines: dict[str, list[str]] = {"train": [], "test": []}
    for c in FOOD_CLASSES:
        (top / "images" / c).mkdir(parents=True, exist_ok=True)
        for i in range(n_train + n_test):
            key = f"{c}/{1000 + i}"
            Image.new("RGB", (40 + 7 * i, 30), FOOD_COLORS[c]).save(top / "images" / f"{key}.jpg", quality=95)
            lines["train" if i < n_train else "test"].append(key)
    (top / "meta").mkdir(parents=True, exist_ok=True)
    (top / "meta" / "classes.txt").write_text("\n".join(FOOD_CLASSES) + "\n")
    (top / "meta" / "labels.txt").write_text("Apple pie\nBeignets\nPho\n")
    for split in ("train", "test"):
        (top / "meta" / f"{split}.txt").write_text("\n".join(lines[split]) + "\n")
    return top


def food101_archive(folder: Path, path: Path) -> bytes:
    """``food-101.tar.gz`` of an extracted folder, members named ``food-101/...``."""
    members = {
        f"food-101/{p.relative_to(folder).as_posix()}": p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }
    return write_tar_gz(path, members)


# ------------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------------


def test_py2_pickle_looks_like_the_official_cifar_files():
    data = py2_pickle({"data": np.zeros((1, 3072), np.uint8)})
    assert data.startswith(b"\x80\x02}")
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in data and b"_codecs" not in data


@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar10_archive_parses_to_the_written_arrays(monkeypatch, tmp_path, split):
    members, expected = cifar_members("cifar10", np.random.default_rng(0))
    archive = write_tar_gz(tmp_path / "data" / "cifar-10-python.tar.gz", members)
    register_cifar(monkeypatch, "cifar10", members, archive)
    ds = load_dataset("cifar10", split, data_dir=tmp_path / "data", download=False)
    images, labels = expected[split]
    assert ds.images.dtype == np.uint8 and ds.images.shape == (len(labels), 3, 32, 32)
    assert ds.labels.dtype == np.int64
    np.testing.assert_array_equal(ds.images, images)
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.classes == expected["classes"] and ds.name == "cifar10" and len(ds) == len(labels)
    assert "cifar-10-python.tar.gz" in ds.source and "md5 ok" in ds.source


def test_cifar10_train_joins_the_five_batches_in_order(monkeypatch, tmp_path):
    members, expected = cifar_members("cifar10", np.random.default_rng(1), n=3)
    archive = write_tar_gz(tmp_path / "cifar-10-python.tar.gz", members)
    register_cifar(monkeypatch, "cifar10", members, archive)
    ds = load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert len(ds) == 15
    np.testing.assert_array_equal(ds.images[3:6].reshape(3, -1), py_unpickle(members["cifar-10-batches-py/data_batch_2"])["data"])


def py_unpickle(data: bytes):
    return pickle.loads(data, encoding="latin1")


def test_cifar10_extracted_folder_is_read_and_verified(monkeypatch, tmp_path):
    members, expected = cifar_members("cifar10", np.random.default_rng(2))
    archive = write_tar_gz(tmp_path / "unused.tar.gz", members)
    for name, data in members.items():
        (tmp_path / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / name).write_bytes(data)
    register_cifar(monkeypatch, "cifar10", members, archive)
    ds = load_dataset("cifar10", "test", data_dir=tmp_path / "data", download=False)
    np.testing.assert_array_equal(ds.images, expected["test"][0])
    assert "extracted folder" in ds.source


@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar100_fine_and_coarse_labels(monkeypatch, tmp_path, split):
    members, expected = cifar_members("cifar100", np.random.default_rng(3))
    archive = write_tar_gz(tmp_path / "cifar100" / "cifar-100-python.tar.gz", members)
    register_cifar(monkeypatch, "cifar100", members, archive)
    fine = load_dataset("cifar100", split, data_dir=tmp_path, download=False)
    images, fine_labels, coarse_labels = expected[split]
    np.testing.assert_array_equal(fine.images, images)
    np.testing.assert_array_equal(fine.labels, fine_labels)
    np.testing.assert_array_equal(fine.coarse_labels, coarse_labels)
    assert len(fine.classes) == 100 and fine.coarse_classes == expected["coarse_classes"]
    coarse = load_dataset("cifar100", split, data_dir=tmp_path, download=False, label_type="coarse")
    np.testing.assert_array_equal(coarse.labels, coarse_labels)
    assert coarse.classes == expected["coarse_classes"]


def test_cifar10_rejects_coarse_labels(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="label_type"):
        load_dataset("cifar10", label_type="coarse", download=False)


@pytest.mark.parametrize("split", ["train", "test"])
def test_mnist_idx_gz_parses_to_the_written_arrays(monkeypatch, tmp_path, split):
    files, arrays = write_mnist(tmp_path / "data" / "mnist", np.random.default_rng(4))
    register(monkeypatch, "mnist", files)
    ds = load_dataset("mnist", split, data_dir=tmp_path / "data", download=False)
    np.testing.assert_array_equal(ds.images[:, 0], arrays[f"{split}_images"])
    np.testing.assert_array_equal(ds.labels, arrays[f"{split}_labels"])
    assert ds.images.shape[1:] == (1, 28, 28) and ds.labels.dtype == np.int64
    assert ds.classes == [str(d) for d in range(10)]


def test_torchvision_layout_and_unzipped_copies_are_found(monkeypatch, tmp_path):
    files, arrays = write_mnist(tmp_path / "made", np.random.default_rng(5))
    register(monkeypatch, "mnist", files)
    raw = tmp_path / "data" / "MNIST" / "raw"  # where torchvision keeps them, already gunzipped
    raw.mkdir(parents=True)
    for name in MNIST_NAMES.values():
        (raw / name[:-3]).write_bytes(gzip.decompress((tmp_path / "made" / name).read_bytes()))
    ds = load_dataset("mnist", "test", data_dir=tmp_path / "data", download=False)
    np.testing.assert_array_equal(ds.images[:, 0], arrays["test_images"])
    assert "md5 of content ok" in ds.source


def test_regzipped_copy_verifies_by_its_content(monkeypatch, tmp_path):
    """Debian repacks the Fashion-MNIST .gz files: other bytes, same content."""
    files, arrays = write_mnist(tmp_path / "made", np.random.default_rng(6))
    register(monkeypatch, "fashion-mnist", files)
    repacked = tmp_path / "system"
    repacked.mkdir()
    for name in MNIST_NAMES.values():
        content = gzip.decompress((tmp_path / "made" / name).read_bytes())
        (repacked / name).write_bytes(gzip.compress(content, compresslevel=1, mtime=123456))
    monkeypatch.setattr(sources, "SYSTEM_DIRS", {"fashion-mnist": (str(repacked),)})
    ds = load_dataset("fashion-mnist", "train", download=False)
    np.testing.assert_array_equal(ds.images[:, 0], arrays["train_images"])
    assert "system copy" in ds.source and "decompressed content ok" in ds.source
    assert ds.classes[0] == "T-shirt/top" and len(ds.classes) == 10


@pytest.fixture
def food_folder(tmp_path: Path) -> Path:
    pytest.importorskip("PIL")
    return write_food101(tmp_path / "data")


def test_food101_folder_is_resized_and_cached(food_folder, tmp_path, monkeypatch):
    train = load_dataset("food101", "train", data_dir=tmp_path / "data", image_size=16, progress=False)
    assert train.images.shape == (6, 3, 16, 16) and train.images.dtype == np.uint8
    assert train.classes == FOOD_CLASSES
    np.testing.assert_array_equal(train.labels, [0, 0, 1, 1, 2, 2])
    for image, label in zip(train.images, train.labels):  # one colour per class survives JPEG + resize
        colour = FOOD_COLORS[FOOD_CLASSES[label]]
        assert np.abs(image.reshape(3, -1).mean(axis=1) - colour).max() < 6
    cache = tmp_path / "data" / "food101" / "processed-16px"
    assert (cache / "train_images.npy").is_file() and (cache / "manifest.json").is_file()
    assert not list(cache.glob("*.part"))
    # The second load reads the cached arrays, even with the photos gone.
    for photo in (food_folder / "images").rglob("*.jpg"):
        photo.unlink()
    test = load_dataset("food101", "test", data_dir=tmp_path / "data", image_size=16)
    assert test.images.shape == (3, 3, 16, 16) and list(test.labels) == [0, 1, 2]
    assert "processed-16px" in test.source


def test_food101_archive_gives_the_same_arrays_as_the_folder(food_folder, tmp_path, monkeypatch):
    from_folder = load_dataset("food101", "train", data_dir=tmp_path / "data", image_size=12, progress=False)
    archive = food101_archive(food_folder, tmp_path / "other" / "food-101.tar.gz")
    register(monkeypatch, "food101", {"archive": RemoteFile("food-101.tar.gz", md5(archive), ())})
    from_archive = load_dataset("food101", "train", data_dir=tmp_path / "other", image_size=12, progress=False)
    np.testing.assert_array_equal(from_archive.images, from_folder.images)
    np.testing.assert_array_equal(from_archive.labels, from_folder.labels)
    assert "food-101.tar.gz" in from_archive.source


def test_food101_missing_photo_is_a_clear_error_and_caches_nothing(food_folder, tmp_path):
    (food_folder / "images" / "pho" / "1001.jpg").unlink()
    with pytest.raises(Exception, match="pho/1001"):
        load_dataset("food101", "train", data_dir=tmp_path / "data", image_size=8, progress=False)
    cache = tmp_path / "data" / "food101" / "processed-8px"
    assert not (cache / "manifest.json").exists() and not list(cache.glob("*images.npy*"))
