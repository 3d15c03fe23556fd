"""Large arrays cached on disk: room checked first, nothing half-written trusted later.

A processed cache (Food-101 at 128 px is 5 GB of ``.npy``) is written in four steps, each
guarding against one fault:

1. ``check_free_space``: the folder's file system must have room for every byte, or the
   build stops before it starts, naming the folder, the bytes needed and the bytes free.
2. ``preallocate``: the ``.part`` file gets all its blocks up front (``posix_fallocate``).
   A memory-mapped write to a sparse file on a full disk kills the process with SIGBUS,
   with no Python exception and no cleanup; a failed allocation is a plain ``ENOSPC`` error.
3. ``try/finally`` in the builder removes ``.part`` files on every exit Python sees, and
   ``minideep.tempfiles.remove_stale`` removes those of builders killed outright.
4. ``write_manifest`` runs last: each file's size, SHA-256, shape and dtype. ``verify``
   checks them on every load, so a truncated, swapped or hand-made cache gets an error that
   names the file and says to delete the folder (it is then rebuilt).

Hashing 5 GB takes seconds, so ``verify`` re-hashes a file only when its size or
modification time differs from the manifest's (a file rewritten after the build);
untouched files are checked by size, shape and dtype.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..tempfiles import create_temp
from .errors import DataFormatError, NotEnoughSpaceError

MANIFEST = "manifest.json"
FORMAT = "minideep-array-cache"
_CHUNK = 1 << 22
_MARGIN = 64 << 20  # leave some room beyond the arrays: the manifest, labels, other writers


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def check_free_space(folder: Path, needed: int, what: str) -> None:
    """Raise ``NotEnoughSpaceError`` unless ``folder``'s file system has ``needed`` bytes free (plus a margin)."""
    free = shutil.disk_usage(folder).free
    if free < needed + _MARGIN:
        raise NotEnoughSpaceError(
            f"{what} needs {needed:,} bytes ({_gb(needed)}) in {folder}, but only {free:,} bytes "
            f"({_gb(free)}) are free there. Free some space, or build it on a larger disk "
            "(data_dir=... / --data-dir, or $MINIDEEP_DATA)."
        )


def preallocate(path: Path, nbytes: int, what: str) -> None:
    """Give ``path`` all ``nbytes`` of its blocks now, so memory-mapped writes cannot hit a full disk."""
    if not hasattr(os, "posix_fallocate"):  # macOS, Windows: only the free-space check guards
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, nbytes)
    except OSError as err:
        if err.errno == errno.ENOSPC:
            free = shutil.disk_usage(path.parent).free
            raise NotEnoughSpaceError(
                f"{what}: the disk holding {path.parent} filled up ({nbytes:,} bytes needed for {path.name}, "
                f"{free:,} free). Free some space, or build it on a larger disk (data_dir=... / --data-dir)."
            ) from None
        if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system without fallocate
            raise
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _npy_header(path: Path) -> tuple[tuple[int, ...], str]:
    """Shape and dtype of an ``.npy`` file, read from its header alone."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
    return tuple(shape), dtype.str


def write_manifest(folder: Path, files: list[str], extra: dict[str, Any]) -> Path:
    """Record size, SHA-256, shape and dtype of each ``.npy`` in ``files``, plus ``extra``; written last, atomically."""
    entries = {}
    for name in files:
        path = folder / name
        st = path.stat()
        shape, dtype = _npy_header(path)
        entries[name] = {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": _sha256(path),
                         "shape": list(shape), "dtype": dtype}
    manifest = {"format": FORMAT, "files": entries, **extra}
    fd, tmp = create_temp(folder / MANIFEST)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(manifest, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, folder / MANIFEST)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return folder / MANIFEST


def untrusted(folder: Path, problem: str) -> DataFormatError:
    """The error for a cache that does not match its manifest: names the folder, the problem and the fix."""
    return DataFormatError(
        f"the cache in {folder} cannot be trusted: {problem}. It was not written completely by "
        f"minideep (interrupted, truncated, edited or made by hand). Delete the folder {folder} "
        "and load again: it is rebuilt from the original files."
    )


def read_manifest(folder: Path) -> dict[str, Any]:
    """The parsed manifest of ``folder``; a missing or unreadable one is a ``DataFormatError`` naming it."""
    path = folder / MANIFEST
    if not path.is_file():
        raise untrusted(folder, f"it has no {MANIFEST} (the record written last, when the build finished)")
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise untrusted(folder, f"{path} is not valid JSON ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), dict):
        raise untrusted(folder, f"{path} is not a minideep cache manifest")
    return manifest


def verify(folder: Path, manifest: dict[str, Any], name: str) -> Path:
    """Check ``folder/name`` against its manifest entry (size, shape, dtype; SHA-256 if it changed)."""
    entry = manifest["files"].get(name)
    path = folder / name
    if not isinstance(entry, dict):
        raise untrusted(folder, f"{MANIFEST} does not list {name}")
    if not path.is_file():
        raise untrusted(folder, f"{path} is missing (or is not a file)")
    try:
        st = path.stat()
        if st.st_size != entry["bytes"]:
            raise untrusted(folder, f"{path} has {st.st_size:,} bytes, the manifest says {entry['bytes']:,}")
        shape, dtype = _npy_header(path)
        if list(shape) != entry["shape"] or dtype != entry["dtype"]:
            raise untrusted(folder, f"{path} holds {dtype} {shape}, the manifest says {entry['dtype']} {tuple(entry['shape'])}")
        if st.st_mtime_ns != entry["mtime_ns"] and _sha256(path) != entry["sha256"]:
            raise untrusted(folder, f"{path} changed after it was built (its SHA-256 differs from the manifest's)")
    except DataFormatError:
        raise
    except (KeyError, TypeError) as err:
        raise untrusted(folder, f"the {MANIFEST} entry of {name} is malformed ({err!r})") from None
    except ValueError as err:  # not an .npy header
        raise untrusted(folder, f"{path} is not a NumPy .npy file ({err})") from None
    return path
