"""The course site builds with `mkdocs build --strict` and serves everything itself.

The build runs the site's hook, which unpacks MathJax from the locally cached tarball
(`python scripts/fetch_mathjax.py` puts it there once); no test downloads anything.
Skips only when MkDocs and its plugins are not installed (`pip install -e ".[docs]"`).
"""
from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs", reason="the site needs the docs extra: pip install -e \".[docs]\"")
pytest.importorskip("material", reason="the site needs mkdocs-material (the docs extra)")
pytest.importorskip("mkdocstrings_handlers.python", reason="the site needs mkdocstrings[python] (the docs extra)")

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PACKAGE = ROOT / "minideep"


def build_site(dest: Path) -> subprocess.CompletedProcess:
    """Run `mkdocs build --strict` into ``dest`` from the repository root."""
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
         "-f", str(ROOT / "mkdocs.yml"), "-d", str(dest)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("site")
    proc = build_site(dest)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return dest


def _nav_pages() -> list[str]:
    """Every Markdown file the nav of mkdocs.yml names (read as text: the file has !!python tags)."""
    text = (ROOT / "mkdocs.yml").read_text()
    nav = text.split("\nnav:", 1)[1].split("\nplugins:", 1)[0]
    return re.findall(r"([\w./-]+\.md)\s*$", nav, flags=re.MULTILINE)


def _html_of(site: Path, page: str) -> Path:
    stem = page[: -len(".md")]
    if stem == "index" or stem.endswith("/index"):
        return site / (stem + ".html")
    return site / stem / "index.html"


def test_strict_build_passes_and_writes_every_nav_page(site: Path) -> None:
    pages = _nav_pages()
    assert "index.md" in pages and "bibliography.md" in pages, pages
    missing = [p for p in pages if not _html_of(site, p).is_file()]
    assert not missing, f"nav pages with no built HTML: {missing}"


# Pages docs/hooks.py writes at build time (the claims ledger, from docs/figures/0N/claims.json).
GENERATED_PAGES = {"claims.md"}


def test_every_nav_page_exists_in_docs() -> None:
    missing = [p for p in _nav_pages() if not (DOCS / p).is_file() and p not in GENERATED_PAGES]
    assert not missing, f"mkdocs.yml names pages that docs/ lacks: {missing}"


def test_mathjax_is_served_by_the_site_itself(site: Path) -> None:
    assert (site / "assets" / "mathjax" / "tex-mml-chtml.js").stat().st_size > 100_000
    fonts = list((site / "assets" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    assert len(fonts) > 10, "MathJax's CHTML fonts are missing from the built site"
    html = (site / "index.html").read_text()
    assert 'src="assets/mathjax/tex-mml-chtml.js"' in html
    assert 'class="arithmatex"' in html, "the home page's math was not marked for MathJax"


_REMOTE = re.compile(
    r"""<(?:script|img|iframe|source)\b[^>]*\bsrc\s*=\s*["']?(?:https?:)?//"""
    r"""|<link\b[^>]*\bhref\s*=\s*["']?(?:https?:)?//[^>]*>"""
    r"""|url\(\s*["']?(?:https?:)?//""",
    re.IGNORECASE,
)


def test_no_page_loads_anything_from_another_host(site: Path) -> None:
    offenders = []
    for path in sorted(site.rglob("*")):
        if path.suffix not in {".html", ".css"} or "mathjax" in path.parts:
            continue
        for match in _REMOTE.finditer(path.read_text(errors="replace")):
            tag = match.group(0)
            # rel="canonical" / "alternate" name the page, the browser fetches nothing.
            if re.search(r"""rel\s*=\s*["']?(canonical|alternate)""", tag):
                continue
            offenders.append(f"{path.relative_to(site)}: {tag[:120]}")
    assert not offenders, "remote resources in the built site:\n" + "\n".join(offenders[:20])


def test_bibliography_anchors_resolve(site: Path) -> None:
    html = (site / "bibliography" / "index.html").read_text()
    for anchor in ("pricope2021", "mlpcw2", "he2015delving", "he2016residual", "ioffe2015",
                   "srivastava2015", "glorot2010", "simonyan2014"):
        assert f'id="{anchor}"' in html, f"bibliography entry #{anchor} is missing"


def _public_modules() -> list[str]:
    """minideep's public modules that need an API page: the top-level modules and
    packages, every op family, and every module of nn (private names start with _)."""
    names = ["minideep"]
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if any(p.startswith("_") for p in parts) or len(parts) < 2:
            continue
        if len(parts) == 2 or (len(parts) == 3 and parts[1] in {"ops", "nn"}):
            names.append(".".join(parts))
    return sorted(set(names))


def test_every_public_module_has_an_api_page(site: Path) -> None:
    # Hand-written pages under docs/api/ or the pages docs/hooks.py generates for the rest.
    anchors = set()
    for page in (site / "api").rglob("index.html"):
        anchors.update(re.findall(r'id="(minideep[\w.]*)"', page.read_text()))
    missing = [m for m in _public_modules() if m not in anchors]
    assert not missing, f"public modules with no API reference in the built site: {missing}"


def test_generated_api_pages_are_in_the_nav(site: Path) -> None:
    documented = set()
    for page in (DOCS / "api").glob("*.md"):
        documented.update(re.findall(r"^:::\s+([\w.]+)", page.read_text(), flags=re.MULTILINE))
    home = (site / "api" / "index.html").read_text()
    for name in _public_modules():
        if name not in documented:
            assert f'href="{name}/"' in home, f"the generated page of {name} is not in the nav"


def test_api_pages_render_docstrings_and_source(site: Path) -> None:
    html = (site / "api" / "autograd" / "index.html").read_text()
    assert 'id="minideep.autograd.Tensor"' in html
    assert "backward" in html and "Source code" in html


def test_top_level_api_page_lists_every_exported_name() -> None:
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    exported = next(
        (ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
         and any(getattr(t, "id", None) == "__all__" for t in node.targets)),
        [],
    )
    page = (DOCS / "api" / "minideep.md").read_text()
    missing = [name for name in exported if f"`{name}`" not in page]
    assert not missing, f"docs/api/minideep.md does not list these names of minideep.__all__: {missing}"


def _text_of(html: str) -> str:
    """The visible text of an HTML fragment (tags dropped, entities decoded), without the source listings."""
    import html as html_module  # noqa: PLC0415

    html = re.sub(r'<details class="mkdocstrings-source">.*?</details>', "", html, flags=re.DOTALL)
    return html_module.unescape(re.sub(r"<[^>]+>", "", html))


def test_docstrings_render_as_written(site: Path) -> None:
    # A star in a formula stays a star (not the start of italics), reST "Example::" becomes an
    # Examples section with its code fenced, ".. math::" a typeset display.
    conv = _html_of(site, "api/nn.md").read_text(encoding="utf-8")
    assert "x_pad[n, c, s*h + i, s*w + j]" in _text_of(conv)
    assert "Example::" not in _text_of(conv)
    page_text = "".join(p.read_text(encoding="utf-8") for p in (site / "api").rglob("*.html"))
    assert "Example::" not in _text_of(page_text) and ".. math::" not in _text_of(page_text)
    assert "<em>h + i, s</em>" not in conv


def test_long_signatures_are_split_one_parameter_a_line(site: Path) -> None:
    # mkdocstrings formats signatures with Ruff (the docs extra installs it).
    conv = _html_of(site, "api/nn.md").read_text(encoding="utf-8")
    start = conv.index('id="minideep.nn.Conv2d"')
    signature = _text_of(conv[conv.index("doc-signature", start):][:3000])
    assert "Conv2d(\n    in_channels: int,\n    out_channels: int," in signature


def test_the_ledger_page_gathers_every_chapters_claims(tmp_path: Path, site: Path) -> None:
    spec = importlib.util.spec_from_file_location("site_hooks", ROOT / "docs" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    (tmp_path / "03").mkdir()
    claims = [{"claim": "VGG38 stays at chance", "source": "Pricope 2021", "paper": "1%", "ours": "10.0%",
               "verdict": "reproduced", "evidence": "test accuracy"}]
    (tmp_path / "03" / "claims.json").write_text(json.dumps({"chapter": "03", "preset": "quick", "claims": claims}))
    (tmp_path / "03" / "claims.md").write_text("| claim |\n| --- |\n| VGG38 stays at chance |\n")
    page = hooks.ledger_page(tmp_path)
    assert "In all: 1 reproduced." in page and "| VGG38 stays at chance |" in page
    assert page.count("No ledger yet") == 6 and "## [Chapter 07](chapters/07-resnet-tuning.md)" in page
    assert (site / "claims" / "index.html").exists()


def _article(html: str) -> str:
    return html[html.find("<article"):html.find("</article>")]


def _toc_top_level(html: str) -> list[str]:
    """The titles of the top-level entries of a built page's table of contents (the right sidebar)."""
    import html as html_module  # noqa: PLC0415

    toc = html[html.index('aria-label="Table of contents"'):]
    toc = toc[:toc.index("</nav>")]
    titles, depth = [], 0
    for token in _toc_tokens(toc):
        if token == "<ul":
            depth += 1
        elif token == "</ul":
            depth -= 1
        elif depth == 1 and token.startswith("title:"):
            titles.append(html_module.unescape(token[6:]))
    return titles


def _toc_tokens(toc: str) -> list[str]:
    """<ul, </ul and the text of each entry's link (title:...), in order."""
    tokens = []
    for match in re.finditer(r'<(/?)ul\b|<span class="md-ellipsis">\s*(.*?)\s*</span>', toc, flags=re.DOTALL):
        if match.group(2) is not None:
            tokens.append("title:" + " ".join(re.sub(r"<[^>]+>", "", match.group(2)).split()))
        else:
            tokens.append("<" + match.group(1) + "ul")
    return tokens


def test_every_page_has_one_title_so_included_files_do_not_break_the_contents(site: Path) -> None:
    # An included results file with an H1 would start a second page title and scramble the contents list.
    offenders = [str(p.relative_to(site)) for p in sorted(site.rglob("index.html"))
                 if len(re.findall(r"<h1[ >]", _article(p.read_text(encoding="utf-8")))) != 1]
    assert not offenders, f"pages with no or several H1 headings: {offenders}"


def test_committed_benchmark_tables_have_no_h1_heading() -> None:
    # benchmarks/run.py writes "## minideep vs PyTorch (...)"; the page includes these files as its sections
    # (a file may also be a bare table, like gpu-counts.md), so none may bring an H1 of its own.
    for path in sorted((ROOT / "benchmarks" / "results").glob("*.md")):
        lines = path.read_text(encoding="utf-8").splitlines()
        assert not [line for line in lines if re.match(r"#(?!#)", line)], f"{path.name} has an H1 heading"
        if path.name.startswith("cpu") or path.name.startswith("before"):
            assert lines[0].startswith("## "), f"{path.name}: its heading is {lines[0]!r}, not an H2"


def test_benchmarks_contents_list_has_the_pages_own_sections(site: Path) -> None:
    html = (site / "benchmarks" / "index.html").read_text(encoding="utf-8")
    top = _toc_top_level(html)
    import html as html_module  # noqa: PLC0415

    headings = [" ".join(html_module.unescape(re.sub(r"<[^>]+>", "", h)).split()).rstrip("¶").strip()
                for h in re.findall(r"<h2 id=[^>]*>(.*?)</h2>", _article(html), flags=re.DOTALL)]
    assert top == headings, (top, headings)
    for own in ("Where the time went, and what changed", "The GPU", "Another CPU"):
        assert own in top, f"the benchmarks page's contents list lacks its section {own!r}: {top}"
    assert sum(t.startswith("minideep vs PyTorch") for t in top) == 4 and any(t.startswith("Before the optimisation")
                                                                              for t in top)


def test_diagnostics_page_shows_each_diagnostic_with_the_run_that_drew_it(site: Path) -> None:
    html = (site / "diagnostics" / "index.html").read_text(encoding="utf-8")
    figures = re.findall(r"<figure>(.*?)</figure>", _article(html), flags=re.DOTALL)
    shown = {}
    for figure in figures:
        src = re.search(r'<img [^>]*src="\.\./figures/(\d\d)/([^"]+)"', figure)
        assert src, f"a figure on the diagnostics page shows no chapter figure: {figure[:200]}"
        chapter, name = src.groups()
        caption = _text_of(re.search(r"<figcaption>(.*?)</figcaption>", figure, flags=re.DOTALL).group(1))
        shown[name] = caption
        assert (DOCS / "figures" / chapter / name).is_file()
        match = re.match(r"Chapter (\d\d), (\w+) preset, ([^(]+?) \(", caption)
        assert match and match.group(1) == chapter, f"{name}: the caption does not start with its chapter: {caption!r}"
        results_path = DOCS / "figures" / chapter / "results.json"
        if results_path.exists():  # the caption says what the committed run was
            results = json.loads(results_path.read_text())
            assert match.group(2) == results["preset"], (name, caption, results["preset"])
            assert name in results.get("figures", []), f"{name} is not a figure of chapter {chapter}'s committed run"
            dataset = (results.get("dataset") or {}).get("name")
            assert ("bundled" in match.group(3)) == (dataset == "bundled"), (name, caption, dataset)
            assert (match.group(3) == "no data set") == (dataset is None), (name, caption, dataset)
    plotted = {"gradient_flow": "gradient_flow", "chain_rule_gains": "chain_rule", "forward_statistics": "activation_std",
               "gate_analysis": "gates", "lesion_study": "lesion", "graph_picture": "graph"}
    for diagnostic, stem in plotted.items():
        assert any(stem in name for name in shown), f"the diagnostics page shows no picture of {diagnostic}: {list(shown)}"


def _chapter_sources() -> dict[str, Path]:
    """Chapter number -> its page under docs/chapters/."""
    return {p.name[:2]: p for p in sorted((DOCS / "chapters").glob("0*.md"))}


def _committed_ledgers() -> list[str]:
    return sorted(p.parent.name for p in (DOCS / "figures").glob("0*/claims.json"))


def test_chapters_with_a_ledger_show_it_near_the_top_of_their_page() -> None:
    # "Near the top": before the page's third section. Chapters whose run has no claims.json yet are not checked.
    pages = _chapter_sources()
    for chapter in _committed_ledgers():
        text = pages[chapter].read_text(encoding="utf-8")
        include = f'--8<-- "docs/figures/{chapter}/claims.md"'
        assert include in text, f"chapter {chapter} commits claims.json but its page does not include claims.md"
        sections = [m.start() for m in re.finditer(r"^## ", text, flags=re.MULTILINE)]
        assert len(sections) < 3 or text.index(include) < sections[2], f"chapter {chapter}: the ledger is not near the top"


def test_chapters_with_a_ledger_include_no_text_table_in_a_code_block() -> None:
    # The rule: results tables are Markdown tables from the run, never fixed-width text in code blocks.
    pages = _chapter_sources()
    for chapter in _committed_ledgers():
        text = pages[chapter].read_text(encoding="utf-8")
        old = re.findall(r'--8<-- "docs/figures/\d\d/((?:table|tables|check)[\w-]*\.txt)"', text)
        assert not old, f"chapter {chapter}'s page still shows text tables in code blocks: {old}"
