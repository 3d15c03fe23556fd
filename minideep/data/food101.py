"""Food-101 (Bossard et al., 2014), resized once and cached as arrays.

The official ``food-101.tar.gz`` (about 5 GB) holds ``food-101/images/<class>/<id>.jpg``
(101 classes x 1,000 photos, longest side 512 px) and ``food-101/meta/`` with
``classes.txt`` (one class per line) and ``train.txt`` / ``test.txt`` (lines
``<class>/<id>``, 750 and 250 per class). The first load decodes every photo with Pillow,
resizes it to ``image_size x image_size`` (the whole photo, squashed to a square; McInroe
2020 used 128 x 128) and writes ``{train,test}_images.npy`` to
``<root>/food101/processed-<S>px/``; later loads memory-map those files in well under a
second.

The archive is streamed, never unpacked: one pass reads the meta files, a second decodes
the photos straight into the output arrays. An already extracted ``food-101/`` folder is
read directly (the release publishes no per-image checksums, so a folder is checked for
its layout only). The images have no licence for redistribution: never bundle them.
"""
from __future__ import annotations

import json
import os
import tarfile
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from . import locate
from .dataset import Dataset
from .errors import DataFormatError
from .fetch import fetch
from .progress import progress_bar

_TOP = "food-101"
_BATCH = 256  # photos decoded together by the thread pool


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
    """
    if not isinstance(image_size, (int, np.integer)) or not 8 <= image_size <= 512:
        raise ValueError(f"load_dataset('food101'): image_size must be an int in 8..512, got {image_size!r}")
    processed = _find_processed(data_dir, int(image_size))
    if processed is None:
        found = fetch("food101", "archive", data_dir, download, progress, folder=_TOP)
        processed = locate.download_dir("food101", data_dir) / f"processed-{image_size}px"
        reader = _FolderReader(found.path) if found.is_folder else _ArchiveReader(found.path)
        _build(reader, processed, int(image_size), progress, found.where)
    info = json.loads((processed / "info.json").read_text())
    images = np.load(processed / f"{split}_images.npy", mmap_mode="r", allow_pickle=False)
    labels = np.load(processed / f"{split}_labels.npy", allow_pickle=False)
    source = f"{processed} (Food-101 resized to {image_size}x{image_size}, built from {info['source']})"
    return Dataset(images, labels, info["classes"], "food101", split, source)


def _find_processed(data_dir: str | Path | None, size: int) -> Path | None:
    for root, _ in locate.search_roots(data_dir):
        folder = root / "food101" / f"processed-{size}px"
        if (folder / "info.json").is_file():
            return folder
    return None


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


def _build(reader: Any, out: Path, size: int, progress: bool, source: str) -> None:
    """Decode every photo once into ``out/{split}_images.npy``; ``info.json`` is written last."""
    classes, keys = reader.meta()
    class_index = {c: i for i, c in enumerate(classes)}
    row = {key: (split, i) for split, split_keys in keys.items() for i, key in enumerate(split_keys)}
    out.mkdir(parents=True, exist_ok=True)
    parts = {s: out / f"{s}_images.npy.{os.getpid()}.part" for s in keys}
    try:
        arrays = {
            s: np.lib.format.open_memmap(parts[s], mode="w+", dtype=np.uint8, shape=(len(k), 3, size, size))
            for s, k in keys.items()
        }
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
        (out / "info.json").write_text(json.dumps(info, indent=1))
    finally:
        for part in parts.values():
            part.unlink(missing_ok=True)
