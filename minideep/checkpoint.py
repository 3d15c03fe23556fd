"""Checkpoints: a nested dict of arrays and plain values in one ``.npz``, written atomically.

A checkpoint is a tree of dicts and lists whose leaves are arrays or JSON values (numbers,
strings, booleans, None). ``save_checkpoint`` stores every array as its own ``.npz``
entry, named by its path in the tree (``model/conv1.weight``,
``optimizer/state/conv1.weight/exp_avg``), and the rest of the tree as one JSON string
(entry ``__tree__``) in which each array is replaced by ``{"__ndarray__": <entry name>}``.
Nothing is pickled: ``load_checkpoint`` reads with ``allow_pickle=False``, so a checkpoint
from elsewhere cannot run code.

Writes are atomic: the file is written under a temporary name in the same folder, flushed
to disk, and moved over the old one with ``os.replace``. A crash mid-write leaves the
previous checkpoint whole.
"""
from __future__ import annotations

import json
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .backend import as_numpy, get_array_module
from .results import write_npz_atomic

FORMAT = "minideep-checkpoint"
VERSION = 1
_TREE_KEY = "__tree__"
_ARRAY_TAG = "__ndarray__"


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupted, or not a minideep checkpoint."""


def _is_array(value: Any) -> bool:
    return isinstance(value, get_array_module(value).ndarray)


def _split(tree: Any, path: str, arrays: dict[str, np.ndarray]) -> Any:
    """The JSON skeleton of ``tree``; arrays are moved into ``arrays`` under their path."""
    if isinstance(tree, Mapping):
        out = {}
        for key, value in tree.items():
            if not isinstance(key, str):
                raise TypeError(f"save_checkpoint: keys must be strings, got {key!r} at {path or '/'}")
            out[key] = _split(value, f"{path}/{key}" if path else key, arrays)
        return out
    if isinstance(tree, (list, tuple)):
        return [_split(value, f"{path}/{i}", arrays) for i, value in enumerate(tree)]
    if _is_array(tree):
        if path in arrays or path == _TREE_KEY:
            raise ValueError(f"save_checkpoint: two arrays would be stored under the name {path!r}")
        arrays[path] = as_numpy(tree)
        return {_ARRAY_TAG: path}
    if isinstance(tree, np.generic):
        return tree.item()
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    raise TypeError(f"save_checkpoint: cannot store a {type(tree).__name__} (at {path or '/'}); use arrays, numbers, strings, lists and dicts")


def _join(tree: Any, arrays: Mapping[str, np.ndarray], path: Path, keep_tags: bool = False) -> Any:
    """Put the arrays back into the skeleton (dicts keep their saved order); ``keep_tags``: leave the array tags."""
    if isinstance(tree, dict):
        if set(tree) == {_ARRAY_TAG} and not keep_tags:
            name = tree[_ARRAY_TAG]
            if name not in arrays:
                raise CheckpointError(f"load_checkpoint: {path} lacks the array {name!r}; the file is damaged")
            return arrays[name]
        return OrderedDict((key, _join(value, arrays, path, keep_tags)) for key, value in tree.items())
    if isinstance(tree, list):
        return [_join(value, arrays, path, keep_tags) for value in tree]
    return tree


def save_checkpoint(path: str | Path, tree: Mapping[str, Any]) -> Path:
    """Write ``tree`` (a dict of arrays, numbers, strings, lists and dicts) to ``path`` atomically.

    GPU arrays are copied to the host. The folder is created if needed.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    skeleton = {"format": FORMAT, "version": VERSION, "tree": _split(tree, "", arrays)}
    arrays[_TREE_KEY] = np.array(json.dumps(skeleton))
    return write_npz_atomic(path, arrays)  # fsync'd, then renamed over the old file


def load_checkpoint(path: str | Path) -> "OrderedDict[str, Any]":
    """Read a checkpoint written by ``save_checkpoint`` (never unpickling anything).

    Raises:
        CheckpointError: the file does not exist, is truncated or corrupted, or was not
            written by ``save_checkpoint``; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"load_checkpoint: no checkpoint file at {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, RuntimeError) as error:
        raise CheckpointError(
            f"load_checkpoint: {path} is not a readable checkpoint (truncated or corrupted?): {error}"
        ) from error
    if _TREE_KEY not in arrays:
        raise CheckpointError(f"load_checkpoint: {path} is an .npz file but not a minideep checkpoint (no {_TREE_KEY!r} entry)")
    try:
        skeleton = json.loads(str(arrays.pop(_TREE_KEY)))
    except json.JSONDecodeError as error:
        raise CheckpointError(f"load_checkpoint: the table of contents of {path} is damaged: {error}") from error
    if not isinstance(skeleton, dict) or skeleton.get("format") != FORMAT:
        raise CheckpointError(f"load_checkpoint: {path} is not a minideep checkpoint")
    if skeleton.get("version") != VERSION:
        raise CheckpointError(f"load_checkpoint: {path} has format version {skeleton.get('version')}, this minideep reads {VERSION}")
    return _join(skeleton["tree"], arrays, path)


def read_metadata(path: str | Path) -> "OrderedDict[str, Any] | None":
    """The plain values of checkpoint ``path`` (epoch, run id, history...), its arrays left unread; None if unreadable.

    Cheap even for a large checkpoint: only the ``__tree__`` entry of the archive is read.
    Each array appears as ``{"__ndarray__": <entry name>}``.
    """
    try:
        with np.load(Path(path), allow_pickle=False) as npz:
            skeleton = json.loads(str(npz[_TREE_KEY]))
        return _join(skeleton["tree"], {}, Path(path), keep_tags=True)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, RuntimeError, TypeError):
        return None


def load_model(model: Any, path: str | Path) -> "OrderedDict[str, Any]":
    """Load the model weights of checkpoint ``path`` (``last.npz`` or ``best.npz``) into ``model``.

    Returns:
        The whole checkpoint, e.g. ``ckpt["epoch"]`` for the epoch it was taken at.
    """
    ckpt = load_checkpoint(path)
    if "model" not in ckpt:
        raise CheckpointError(f"load_model: {path} holds no model state")
    model.load_state_dict(ckpt["model"])
    return ckpt
