"""Food-101 (Bossard et al., 2014), resized once and cached as arrays.

The official ``food-101.tar.gz`` (about 5 GB) holds ``food-101/images/<class>/<id>.jpg``
(101 classes x 1,000 photos, longest side 512 px) and ``food-101/meta/`` with
``classes.txt`` (one class per line) and ``train.txt`` / ``test.txt`` (lines
``<class>/<id>``, 750 and 250 per class). The first load decodes every photo with Pillow,
resizes it to ``image_size x image_size`` (the whole photo, squashed to a square; McInroe
2020 used 128 x 128) and writes ``{train,test}_images.npy`` to
``<root>/food101/processed-<S>px/``; later loads memory-map those files in well under a
second. The build checks the free space first (101,000 x 3 x S x S bytes: 4.96 GB at 128 px),
never leaves its ``.part`` files behind (removed on every exit, and at the next build when a
builder was killed), and writes ``manifest.json`` last; every load checks the files against
it (``array_cache``), so an interrupted, truncated or hand-made cache is never used.

The archive is streamed, never unpacked: one pass reads the meta files, a second decodes
the photos straight into the output arrays. An already extracted ``food-101/`` folder is
read directly (the release publishes no per-image checksums, so a folder is checked for
its layout only). The images have no licence for redistribution: never bundle them.
"""
from __future__ import annotations

import os
import re
import tarfile
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from ..tempfiles import pid_alive, remove_stale, temp_name
from . import array_cache, locate
from .dataset import Dataset
from .errors import DataFormatError
from .fetch import fetch
from .progress import progress_bar

_TOP = "food-101"
_BATCH = 256  # photos decoded together by the thread pool
_LEGACY_PART = re.compile(r"(train|test)_images\.npy\.(\d+)\.part")  # named by PID only, before manifests


def load_food101(
    split: str = "train",
    data_dir: str | Path | None = None,
    download: bool = True,
    progress: bool = True,
    image_size: int = 128,
) -> Dataset:
    """Load Food-101 resized to ``image_size`` (75,750 train / 25,250 test, 101 classes).

    Returns:
        A Dataset with images ``(N, 3, S, S)`` uint8 (a read-only memory map of the cache).

    Raises:
        NotEnoughSpaceError: the cache must be built and its disk has no room for it.
        DataFormatError: the cache does not match its manifest (or has none); the message
            names the file and says to delete the folder so that it is rebuilt.
    """
    if not isinstance(image_size, (int, np.integer)) or not 8 <= image_size <= 512:
        raise ValueError(f"load_dataset('food101'): image_size must be an int in 8..512, got {image_size!r}")
    processed = _find_processed(data_dir, int(image_size))
    if processed is None:
        found = fetch("food101", "archive", data_dir, download, progress, folder=_TOP)
        processed = locate.download_dir("food101", data_dir) / f"processed-{image_size}px"
        reader = _FolderReader(found.path) if found.is_folder else _ArchiveReader(found.path)
        _build(reader, processed, int(image_size), progress, found.where)
    images, labels, info = _load_processed(processed, split)
    source = f"{processed} (Food-101 resized to {image_size}x{image_size}, built from {info['source']})"
    return Dataset(images, labels, info["classes"], "food101", split, source)


def _find_processed(data_dir: str | Path | None, size: int) -> Path | None:
    """The first finished (or claimed finished: ``info.json`` of an older build) cache folder."""
    for root, _ in locate.search_roots(data_dir):
        folder = root / "food101" / f"processed-{size}px"
        if any((folder / marker).exists() for marker in (array_cache.MANIFEST, "info.json")):
            return folder
    return None


def _load_processed(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """A split's images (memory-mapped) and labels, checked against the manifest and the classes."""
    manifest = array_cache.read_manifest(folder)
    images_path = array_cache.verify(folder, manifest, f"{split}_images.npy")
    labels_path = array_cache.verify(folder, manifest, f"{split}_labels.npy")
    classes = manifest.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise array_cache.untrusted(folder, f"{array_cache.MANIFEST} has no list of class names")
    images = np.load(images_path, mmap_mode="r", allow_pickle=False)
    labels = np.load(labels_path, allow_pickle=False)
    if images.ndim != 4 or images.shape[1] != 3 or len(labels) != len(images) or labels.dtype.kind not in "iu":
        raise array_cache.untrusted(folder, f"{split} holds images {images.shape} and labels {labels.dtype} {labels.shape}")
    if len(labels) and not (0 <= labels.min() and labels.max() < len(classes)):
        raise array_cache.untrusted(
            folder, f"{labels_path} has labels {labels.min()}..{labels.max()}, outside 0..{len(classes) - 1} (the classes)"
        )
    return images, labels, manifest


def _parse_meta(classes_txt: str, split_txt: dict[str, str]) -> tuple[list[str], dict[str, list[str]]]:
    """Class names and, per split, the ``<class>/<id>`` keys, checked against each other."""
    classes = [line.strip() for line in classes_txt.splitlines() if line.strip()]
    known = set(classes)
    keys = {}
    for split, text in split_txt.items():
        keys[split] = [line.strip() for line in text.splitlines() if line.strip()]
        bad = [k for k in keys[split] if k.split("/")[0] not in known]
        if bad:
            raise DataFormatError(f"Food-101 meta/{split}.txt names an unknown class in {bad[0]!r}")
    return classes, keys


class _FolderReader:
    """Reads an extracted ``food-101/`` folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for part in ("meta/classes.txt", "meta/train.txt", "meta/test.txt", "images"):
            if not (root / part).exists():
                raise DataFormatError(f"{root} is not an extracted Food-101 folder: it lacks {part}")

    def meta(self) -> tuple[list[str], dict[str, list[str]]]:
        read = lambda name: (self.root / "meta" / name).read_text()  # noqa: E731
        return _parse_meta(read("classes.txt"), {s: read(f"{s}.txt") for s in ("train", "test")})

    def photos(self, wanted: set[str]) -> Iterator[tuple[str, Any]]:
        for key in sorted(wanted):
            yield key, self.root / "images" / f"{key}.jpg"


class _ArchiveReader:
    """Streams the (verified) ``food-101.tar.gz`` without unpacking it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _members(self) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
        try:
            with tarfile.open(self.path, "r|gz") as archive:
                for member in archive:
                    if member.isfile():
                        yield archive, member
        except (tarfile.TarError, OSError, EOFError) as err:
            raise DataFormatError(f"{self.path} is not a readable tar.gz archive ({type(err).__name__}: {err})") from None

    def meta(self) -> tuple[list[str], dict[str, list[str]]]:
        texts: dict[str, str] = {}
        for archive, member in self._members():
            if member.name.startswith(f"{_TOP}/meta/") and member.name.endswith(".txt"):
                texts[member.name.rsplit("/", 1)[1]] = archive.extractfile(member).read().decode()  # type: ignore[union-attr]
        missing = [n for n in ("classes.txt", "train.txt", "test.txt") if n not in texts]
        if missing:
            raise DataFormatError(f"{self.path} lacks {_TOP}/meta/{missing[0]}")
        return _parse_meta(texts["classes.txt"], {s: texts[f"{s}.txt"] for s in ("train", "test")})

    def photos(self, wanted: set[str]) -> Iterator[tuple[str, Any]]:
        prefix = f"{_TOP}/images/"
        for archive, member in self._members():
            if member.name.startswith(prefix) and member.name.endswith(".jpg"):
                key = member.name[len(prefix):-4]
                if key in wanted:
                    yield key, archive.extractfile(member).read()  # type: ignore[union-attr]


def _decode(photo: Any, size: int) -> np.ndarray:
    """One photo (path or JPEG bytes) -> uint8 ``(3, size, size)``, resized with Pillow."""
    import io

    from PIL import Image  # noqa: PLC0415 - Pillow is only needed for Food-101

    with Image.open(io.BytesIO(photo) if isinstance(photo, bytes) else photo) as image:
        image.draft("RGB", (size, size))  # let the JPEG decoder skip detail we would throw away
        image = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image).transpose(2, 0, 1)


def _batched(items: Iterable[Any], n: int) -> Iterator[list[Any]]:
    it = iter(items)
    while batch := list(islice(it, n)):
        yield batch


def remove_stale_parts(out: Path) -> list[Path]:
    """Delete the ``.part`` files in ``out`` of builders that died (kill -9, SIGBUS, power cut)."""
    removed = remove_stale(out, ".*.part")
    for path in out.glob("*_images.npy.*.part"):
        match = _LEGACY_PART.fullmatch(path.name)
        if match and not pid_alive(int(match[2])):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _build(reader: Any, out: Path, size: int, progress: bool, source: str) -> None:
    """Decode every photo once into ``out/{split}_images.npy``; ``manifest.json`` is written last."""
    classes, keys = reader.meta()
    class_index = {c: i for i, c in enumerate(classes)}
    row = {key: (split, i) for split, split_keys in keys.items() for i, key in enumerate(split_keys)}
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(out)
    what = f"the Food-101 cache at {size}px ({len(row):,} photos)"
    array_cache.check_free_space(out, sum(len(k) for k in keys.values()) * 3 * size * size, what)
    parts = {s: temp_name(out / f"{s}_images.npy", ".part") for s in keys}
    try:
        arrays = {}
        for s, k in keys.items():
            arrays[s] = np.lib.format.open_memmap(parts[s], mode="w+", dtype=np.uint8, shape=(len(k), 3, size, size))
            array_cache.preallocate(parts[s], parts[s].stat().st_size, what)  # ENOSPC now, not SIGBUS later
        done = set()
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool, progress_bar(
            len(row), f"resizing Food-101 to {size}px", unit="img", enabled=progress
        ) as bar:
            for batch in _batched(reader.photos(set(row)), _BATCH):
                for (key, _), image in zip(batch, pool.map(lambda kp: _decode(kp[1], size), batch)):
                    split, i = row[key]
                    arrays[split][i] = image
                    done.add(key)
                bar.update(len(batch))
        missing = set(row) - done
        if missing:
            raise DataFormatError(f"Food-101 source {source} lacks {len(missing)} photos, e.g. {sorted(missing)[0]}.jpg")
        for split, split_keys in keys.items():
            arrays[split].flush()
            del arrays[split]
            np.save(out / f"{split}_labels.npy", np.array([class_index[k.split('/')[0]] for k in split_keys], np.int64))
            os.replace(parts[split], out / f"{split}_images.npy")
        info = {"image_size": size, "resize": "whole photo, bilinear, aspect not kept", "classes": classes,
                "counts": {s: len(k) for s, k in keys.items()}, "source": source}
        array_cache.write_manifest(out, [f"{s}_{kind}.npy" for s in keys for kind in ("images", "labels")], info)
    finally:
        for part in parts.values():
            part.unlink(missing_ok=True)
