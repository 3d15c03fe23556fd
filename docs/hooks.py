"""MkDocs hook for the minideep site: offline MathJax, an API page for every module.

Registered in ``mkdocs.yml`` under ``hooks:``. On every build it

* makes sure ``docs/assets/mathjax/`` holds the pinned MathJax 3 (unpacked from a local,
  checksum-verified tarball by ``scripts/fetch_mathjax.py``; never from the network), so
  the built site renders math with no CDN;
* gives every public module of ``minideep`` an API page: modules that no page under
  ``docs/api/`` documents with ``::: name`` get a generated page ``api/<name>.md``,
  listed at the end of the "API reference" section, so a new module is never missing
  from the reference (write a page by hand to group or introduce modules);
* turns the snippet base paths (``.`` and ``docs``) into absolute paths under the
  repository, so ``--8<--`` includes work whatever folder ``mkdocs`` runs from.

It also holds :class:`PyTorchDocstrings`, a griffe extension (listed in the mkdocstrings
handler's options) that reads the library's PyTorch-style docstrings as the Google style
the API pages are rendered with.
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
from mkdocs.structure.files import File, Files

SETUP_COMMAND = "python scripts/fetch_mathjax.py"
API_SECTION = "API reference"
PACKAGE = "minideep"
# Packages whose every module gets a page (the op families, the layers); elsewhere a
# package's page stands for its submodules.
PER_MODULE_PACKAGES = {"ops", "nn"}

_generated: dict[str, str] = {}


def _load_fetcher(root: Path) -> ModuleType:
    """Import scripts/fetch_mathjax.py by path (scripts/ is not a package)."""
    path = root / "scripts" / "fetch_mathjax.py"
    spec = importlib.util.spec_from_file_location("minideep_fetch_mathjax", path)
    if spec is None or spec.loader is None:
        raise PluginError(f"docs/hooks.py: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def public_modules(root: Path) -> list[str]:
    """Dotted names of the modules that need an API page: the package, its modules and
    subpackages, and every module of ``minideep.ops`` and ``minideep.nn``."""
    names = {PACKAGE}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if len(parts) < 2 or any(p.startswith("_") for p in parts):
            continue
        if len(parts) == 2 or (len(parts) == 3 and parts[1] in PER_MODULE_PACKAGES):
            names.add(".".join(parts))
    return sorted(names)


def documented_modules(api_dir: Path) -> set[str]:
    """Objects that the hand-written pages under ``docs/api/`` render with ``::: name``."""
    found: set[str] = set()
    for page in api_dir.glob("*.md"):
        found.update(re.findall(r"^:::\s+([\w.]+)", page.read_text(encoding="utf-8"), re.MULTILINE))
    return found


def _api_section(nav: list[Any] | None) -> list[Any] | None:
    for item in nav or []:
        if isinstance(item, dict) and isinstance(item.get(API_SECTION), list):
            return item[API_SECTION]
    return None


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

    _generated.clear()
    documented = documented_modules(Path(config.docs_dir) / "api")
    for name in public_modules(root):
        if name not in documented:
            _generated[f"api/{name}.md"] = f"::: {name}\n    options:\n      heading_level: 1\n"
    section = _api_section(config.nav)
    if section is not None:
        listed = {v for item in section for v in (item.values() if isinstance(item, dict) else [item])}
        section.extend({uri[4:-3]: uri} for uri in _generated if uri not in listed)
    return config


LEDGER_PAGE = "claims.md"
CHAPTER_PAGES = {
    "01": "chapters/01-autodiff.md", "02": "chapters/02-chain-rule.md", "03": "chapters/03-vgg38.md",
    "04": "chapters/04-highway.md", "05": "chapters/05-skip-to-head.md", "06": "chapters/06-init-bn-arch.md",
    "07": "chapters/07-resnet-tuning.md",
}


def ledger_page(figures: Path) -> str:
    """The site's page of every chapter's claims ledger, from ``docs/figures/0N/claims.json``.

    Each chapter writes its ledger from its committed results.json (``claims.md`` is the
    same table, included on the chapter's own page); a chapter without one says so.
    """
    import json  # noqa: PLC0415

    lines = ["# The claims ledger", "",
             "Every headline claim of each chapter's paper, with the paper's number beside ours and a verdict: "
             "**reproduced**, **differs** or **not run**. Each chapter writes its ledger from the committed run "
             "whose figures its page shows (`docs/figures/0N/claims.json`), so no number here is typed by hand.", ""]
    counts: dict[str, int] = {}
    sections = []
    for chapter, page in CHAPTER_PAGES.items():
        path = figures / chapter / "claims.json"
        sections += [f"## [Chapter {chapter}]({page})", ""]
        if not path.exists():
            sections += ["No ledger yet: this chapter's committed run predates the claims ledger.", ""]
            continue
        ledger = json.loads(path.read_text(encoding="utf-8"))
        sections += [f"From its `{ledger.get('preset')}` preset run.", "",
                     (figures / chapter / "claims.md").read_text(encoding="utf-8").strip()
                     if (figures / chapter / "claims.md").exists() else "", ""]
        for claim in ledger.get("claims", []):
            counts[claim["verdict"]] = counts.get(claim["verdict"], 0) + 1
    total = ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items())) or "no claims yet"
    return "\n".join(lines + [f"In all: {total}.", ""] + sections)


def on_files(files: Files, config: MkDocsConfig) -> Files:
    if files.get_file_from_path(LEDGER_PAGE) is None:
        files.append(File.generated(config, LEDGER_PAGE,
                                    content=ledger_page(Path(config.docs_dir) / "figures")))
    for uri, content in _generated.items():
        if files.get_file_from_path(uri) is None:
            files.append(File.generated(config, uri, content=content))
    return files


# PyTorch writes "Example:" (singular); griffe's Google parser only knows "Examples:".
_EXAMPLE_HEADING = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)
# Sphinx roles such as :func:`x` or :class:`~pathlib.Path` would show up verbatim.
_SPHINX_ROLE = re.compile(r":(?:func|class|meth|attr|data|mod|obj|exc):`~?([^`]+)`")
# reST literal blocks: "Example::", "text::" and ".. math::", each followed by an indented block.
_LITERAL = re.compile(r"^(?P<indent>\s*)(?P<text>.*?)::\s*$")
# A parameter line whose name has stars ("*layers: ...", "**kwargs: ..."): griffe reads the name.
_STARRED_NAME = re.compile(r"^(\s*\*{1,2}\w+:)(.*)$")
# Inline code spans, which Markdown already shows literally.
_CODE_SPAN = re.compile(r"(``.+?``|`[^`]+`)")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _literal_blocks(text: str) -> list[tuple[str, str]]:
    """Split a docstring into ("text", ...) and ("code", ...) parts, turning reST into Markdown.

    ``Example::`` becomes an ``Examples:`` section holding a fenced Python block, any other
    ``text::`` a paragraph ending in ":" and a fenced block, ``.. math::`` a ``$$`` display
    (arithmatex typesets it). The docstrings are written to read well in ``help()``: the site
    shows them as written.
    """
    lines, parts, i = text.splitlines(), [], 0
    while i < len(lines):
        match = _LITERAL.match(lines[i])
        if not match:
            parts.append(("text", lines[i]))
            i += 1
            continue
        indent, head = match["indent"], match["text"].strip()
        j = i + 1
        while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > len(indent)):
            j += 1
        block = lines[i + 1:j]
        while block and not block[0].strip():
            block.pop(0)
        while block and not block[-1].strip():
            block.pop()
        depth = min((_indent(line) for line in block if line.strip()), default=0)
        if head == ".. math":
            inner, opening, closing = indent, "$$", "$$"
        elif head == "Example":
            inner, opening, closing = indent + "    ", "```python", "```"
            parts.append(("text", f"{indent}Examples:"))
        else:
            inner, opening, closing = indent, "```text", "```"
            parts += [("text", f"{indent}{head}:"), ("text", "")]
        if head == ".. math":
            parts.append(("text", ""))
        parts.append(("code", inner + opening))
        parts += [("code", inner + line[depth:] if line.strip() else "") for line in block]
        parts += [("code", inner + closing), ("text", "")]
        i = j
    return parts


def _literal_stars(line: str) -> str:
    """Escape ``*`` outside code spans, so ``s*h + i`` is not read as emphasis."""
    name = _STARRED_NAME.match(line)
    prefix, rest = (name.group(1), name.group(2)) if name else ("", line)
    pieces = _CODE_SPAN.split(rest)
    return prefix + "".join(p if k % 2 else p.replace("*", "\\*") for k, p in enumerate(pieces))


def render_as_written(text: str) -> str:
    """The docstring ``text`` as Markdown that shows what ``help()`` shows (see the extension)."""
    text = _EXAMPLE_HEADING.sub(r"\1Examples:", text)
    text = _SPHINX_ROLE.sub(r"`\1`", text)
    fenced, out = False, []
    for kind, line in _literal_blocks(text):
        if kind == "text" and line.lstrip().startswith("```"):
            fenced = not fenced  # a fence written in the docstring itself
        out.append(line if kind == "code" or fenced or line.lstrip().startswith("```") else _literal_stars(line))
    return "\n".join(out)


class PyTorchDocstrings(griffe.Extension):
    """Normalise docstrings before griffe parses them, so that the site shows them as written.

    ``Example:`` and ``Example::`` become Google ``Examples:`` sections (the second with its
    code fenced), other reST ``::`` literal blocks become fenced blocks, ``.. math::`` a
    ``$$`` display, Sphinx roles plain code spans, and a ``*`` outside code (``s*h + i``)
    stays a star instead of turning the text after it italic.
    """

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        doc = obj.docstring
        if doc is None:
            return
        doc.value = render_as_written(doc.value)
