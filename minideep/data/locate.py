"""Where data sets are looked for, in order, and where downloads go.

1. ``data_dir`` (the ``--data-dir`` of a chapter), then the ``MINIDEEP_DATA`` environment
   variable;
2. the user cache: ``$XDG_CACHE_HOME/minideep`` when ``XDG_CACHE_HOME`` is set, else
   ``~/.cache/minideep``;
3. a system copy where one is known (Debian's ``dataset-fashion-mnist`` package installs
   ``/usr/share/datasets/fashion-mnist``).

Inside each root a data set may sit in its own folder (``cifar10/``), in torchvision's
folder (``MNIST/raw/``) or directly in the root. Downloads go to ``<first root>/<name>/``.
"""
from __future__ import annotations

import os
from pathlib import Path

from . import sources

ENV_DATA = "MINIDEEP_DATA"
ENV_OFFLINE = "MINIDEEP_OFFLINE"


def cache_dir() -> Path:
    """The user cache: ``$XDG_CACHE_HOME/minideep``, or ``~/.cache/minideep``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "minideep"


def offline() -> bool:
    """True when ``MINIDEEP_OFFLINE`` is set to something other than ``0``/empty (no downloads)."""
    return os.environ.get(ENV_OFFLINE, "").strip().lower() not in ("", "0", "false", "no")


def search_roots(data_dir: str | Path | None = None) -> list[tuple[Path, str]]:
    """The user-level roots, in search order, each with a label for messages."""
    roots: list[tuple[Path, str]] = []
    if data_dir is not None:
        roots.append((Path(data_dir).expanduser(), "data_dir"))
    if os.environ.get(ENV_DATA):
        roots.append((Path(os.environ[ENV_DATA]).expanduser(), f"${ENV_DATA}"))
    roots.append((cache_dir(), "user cache"))
    seen: set[Path] = set()
    unique = []
    for root, label in roots:
        if root.resolve() not in seen:
            seen.add(root.resolve())
            unique.append((root, label))
    return unique


def candidate_dirs(name: str, data_dir: str | Path | None = None) -> list[tuple[Path, str]]:
    """Every folder that may hold ``name``'s files, in search order, with a label each."""
    dirs = []
    for root, label in search_roots(data_dir):
        for alias in sources.FOLDER_ALIASES.get(name, (name, "")):
            dirs.append((root / alias if alias else root, label))
    for system in sources.SYSTEM_DIRS.get(name, ()):
        dirs.append((Path(system), "system copy"))
    return dirs


def _writable(path: Path) -> bool:
    """Whether ``path`` can be created or written to (checked on its nearest existing ancestor)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return os.access(path, os.W_OK)


def download_dir(name: str, data_dir: str | Path | None = None) -> Path:
    """The folder downloads and caches of ``name`` go to: ``<root>/<name>`` in the first
    writable root (a read-only shared ``$MINIDEEP_DATA`` is skipped for the user cache)."""
    roots = search_roots(data_dir)
    for root, _ in roots:
        if _writable(root / name):
            return root / name
    return roots[-1][0] / name


def find(name: str, entries: tuple[str, ...], data_dir: str | Path | None = None) -> tuple[Path, str] | None:
    """The first existing ``<dir>/<entry>`` over the candidate dirs (outer) and entries (inner)."""
    for directory, label in candidate_dirs(name, data_dir):
        for entry in entries:
            path = directory / entry
            if path.exists():
                return path, label
    return None


def describe_search(name: str, data_dir: str | Path | None = None) -> str:
    """One line per root saying which folders were looked in, for error messages."""
    lines = []
    for root, label in search_roots(data_dir):
        aliases = sources.FOLDER_ALIASES.get(name, (name, ""))
        where = ", ".join(f"{a}/" if a else "the folder itself" for a in aliases)
        lines.append(f"    {root} ({label}): looked in {where}")
    for system in sources.SYSTEM_DIRS.get(name, ()):
        lines.append(f"    {system} (system copy)")
    return "\n".join(lines)
