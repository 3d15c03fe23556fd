"""MkDocs hook for the minideep site: offline MathJax and folder-independent snippets.

Registered in ``mkdocs.yml`` under ``hooks:``. On every build it

* makes sure ``docs/assets/mathjax/`` holds the pinned MathJax 3 (unpacked from a local,
  checksum-verified tarball by ``scripts/fetch_mathjax.py``; never from the network), so
  the built site renders math with no CDN;
* turns the snippet base paths (``.`` and ``docs``) into absolute paths under the
  repository, so ``--8<--`` includes work whatever folder ``mkdocs`` runs from.

It also holds :class:`PyTorchDocstrings`, a griffe extension (listed under the
mkdocstrings handler's ``extensions``) that reads the library's PyTorch-style docstrings
as the Google style the API pages are rendered with.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import griffe

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError

SETUP_COMMAND = "python scripts/fetch_mathjax.py"


def _load_fetcher(root: Path) -> ModuleType:
    """Import scripts/fetch_mathjax.py by path (scripts/ is not a package)."""
    path = root / "scripts" / "fetch_mathjax.py"
    spec = importlib.util.spec_from_file_location("minideep_fetch_mathjax", path)
    if spec is None or spec.loader is None:
        raise PluginError(f"docs/hooks.py: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    root = Path(config.config_file_path).resolve().parent
    snippets = config.mdx_configs.get("pymdownx.snippets")
    if snippets is not None:
        bases = snippets.get("base_path", ["."])
        bases = [bases] if isinstance(bases, str) else bases
        snippets["base_path"] = [str((root / b).resolve()) for b in bases]

    fetcher = _load_fetcher(root)
    dest = Path(config.docs_dir) / "assets" / "mathjax"
    try:
        fetcher.ensure_mathjax(dest, offline=True)
    except fetcher.MathJaxUnavailable as err:
        raise PluginError(
            f"{err}\nThe site serves MathJax itself. Run `{SETUP_COMMAND}` once "
            "(it needs the npm registry the first time), then build again."
        ) from err
    return config


# PyTorch writes "Example:" (singular); griffe's Google parser only knows "Examples:".
_EXAMPLE_HEADING = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)
# Sphinx roles such as :func:`x` or :class:`~pathlib.Path` would show up verbatim.
_SPHINX_ROLE = re.compile(r":(?:func|class|meth|attr|data|mod|obj|exc):`~?([^`]+)`")


class PyTorchDocstrings(griffe.Extension):
    """Normalise docstrings before griffe parses them: ``Example:`` and Sphinx roles."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        doc = obj.docstring
        if doc is None:
            return
        text = _EXAMPLE_HEADING.sub(r"\1Examples:", doc.value)
        doc.value = _SPHINX_ROLE.sub(r"`\1`", text)
