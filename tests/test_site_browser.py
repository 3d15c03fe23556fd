"""The built site, served on 127.0.0.1 and opened in Debian's headless Chromium.

For the home page and every chapter page: no console errors, no request to any host but
this machine, every formula typeset by MathJax (no raw TeX left), every figure loaded.
On every chapter page, at 1280 px: no results table or display equation is wider than the
content column (one that is still too wide must scroll inside a container that fits the
column), and the page does not scroll sideways; a chapter that commits its claims ledger
(docs/figures/0N/claims.json) shows it as a table. The claims-ledger page lists every
chapter, and the API pages show docstrings as written (Conv2d's ``s*h + i``, no ``Example::``).
A screenshot of each page is saved under the test's temporary folder.

Skips cleanly without MkDocs (`pip install -e ".[docs]"`), Selenium (the test extra) or
Chromium and its driver (`apt-get install chromium chromium-driver`); no browser is
ever downloaded.
"""
from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import pytest

pytest.importorskip("mkdocs", reason="the site needs the docs extra: pip install -e \".[docs]\"")
pytest.importorskip("material", reason="the site needs mkdocs-material (the docs extra)")
pytest.importorskip("mkdocstrings_handlers.python", reason="the site needs mkdocstrings[python]")
webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or (
    "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
)
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
    ),
]

ROOT = Path(__file__).resolve().parents[1]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
LOCAL_SCHEMES = {"data", "blob", "about", "chrome", "devtools"}


def _build(dest: Path, site_url: str) -> None:
    # Instant navigation only intercepts links listed in the sitemap, whose URLs keep
    # site_url's port: build for the address the test serves on.
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", MINIDEEP_SITE_URL=site_url)
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
         "-f", str(ROOT / "mkdocs.yml"), "-d", str(dest)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass


@pytest.fixture(scope="module")
def served_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """Build the site and serve it on an ephemeral port of 127.0.0.1."""
    site = tmp_path_factory.mktemp("site")
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    try:
        _build(site, base)
        thread.start()
        yield base, site
    finally:
        if thread.is_alive():
            server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator["webdriver.Chrome"]:
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--disable-default-apps", "--disable-extensions",
        "--window-size=1280,900",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _requested_urls(driver: "webdriver.Chrome") -> list[str]:
    """URLs the page asked for since the last call, from Chromium's performance log."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _is_local(url: str) -> bool:
    parsed = urlparse(url)
    if parsed.scheme in LOCAL_SCHEMES:
        return True
    return parsed.scheme in {"http", "https", "ws"} and parsed.hostname in LOCAL_HOSTS


_WAIT_FOR_MATHJAX = """
const done = arguments[arguments.length - 1];
const started = Date.now();
(function wait() {
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) {
    mj.startup.promise.then(() => done("ok"), (err) => done("error: " + err));
  } else if (Date.now() - started > 30000) {
    done("MathJax did not start within 30 s");
  } else {
    setTimeout(wait, 50);
  }
})();
"""

_WAIT_FOR_IMAGES = """
const done = arguments[arguments.length - 1];
const images = Array.from(document.images);
// Lazy images only load once visible: bring each into view, then wait for all.
images.forEach((img) => { img.loading = "eager"; img.scrollIntoView(); });
window.scrollTo(0, 0);
Promise.all(images.map((img) => img.complete ? null :
    new Promise((resolve) => { img.addEventListener("load", resolve); img.addEventListener("error", resolve); })))
  .then(() => done(images.map((img) => [img.currentSrc || img.src, img.naturalWidth])));
"""

_MATH_STATE = """
const article = document.querySelector("article") || document.body;
const copy = article.cloneNode(true);
// Code may show TeX on purpose; only prose must be free of raw delimiters.
copy.querySelectorAll("pre, code, mjx-container, mjx-assistive-mml, script").forEach((n) => n.remove());
return {
  marked: article.querySelectorAll(".arithmatex").length,
  pending: Array.from(article.querySelectorAll(".arithmatex"))
      .filter((n) => !n.querySelector("mjx-container")).length,
  typeset: article.querySelectorAll("mjx-container").length,
  errors: article.querySelectorAll("mjx-merror, [data-mjx-error]").length,
  text: copy.textContent,
};
"""


# Every results table and display equation of the article, and whether it fits the content
# column (Material's .md-content, between the two sidebars): either its own box lies inside
# the column, or it scrolls inside the nearest container that clips it sideways and that
# container's box lies inside the column. MathJax's hidden assistive copy is left out.
_LAYOUT = """
const column = document.querySelector(".md-content").getBoundingClientRect();
const article = document.querySelector("article") || document.body;
const inside = (r) => r.left >= column.left - 1 && r.right <= column.right + 1;
const scroller = (el) => {
  for (let a = el; a && a !== article.parentElement; a = a.parentElement) {
    const overflow = getComputedStyle(a).overflowX;
    if ((overflow === "auto" || overflow === "scroll" || overflow === "hidden") && a.scrollWidth > a.clientWidth + 1) {
      return a;
    }
  }
  return null;
};
const items = [...article.querySelectorAll("table")].map((el) => ["table", el]).concat(
  [...article.querySelectorAll("mjx-container[display='true']")]
    .filter((el) => !el.closest("mjx-assistive-mml")).map((el) => ["equation", el]));
const overflowing = [], scrolling = [];
for (const [kind, el] of items) {
  const box = el.getBoundingClientRect();
  const what = kind + " '" + el.textContent.replace(/\\s+/g, " ").trim().slice(0, 60) + "'";
  const wrap = scroller(el);
  if (wrap) {
    const r = wrap.getBoundingClientRect();
    if (inside(r)) {
      scrolling.push(what + " (" + el.scrollWidth + " px in " + wrap.clientWidth + ")");
    } else {
      overflowing.push(what + ": its scrolling container spans " + Math.round(r.left) + "-" + Math.round(r.right));
    }
  } else if (!inside(box)) {
    overflowing.push(what + ": spans " + Math.round(box.left) + "-" + Math.round(box.right));
  }
}
const headers = [...article.querySelectorAll("table")].map(
  (t) => [...(t.tHead || t).rows[0].cells].map((c) => c.textContent.trim().toLowerCase()));
return {column: [column.left, column.right], tables: items.filter((i) => i[0] === "table").length,
        equations: items.length - items.filter((i) => i[0] === "table").length,
        overflowing: overflowing, scrolling: scrolling, headers: headers,
        page_width: document.documentElement.scrollWidth, viewport: window.innerWidth};
"""

# Every chapter 01-07 commits its ledger (docs/figures/0N/claims.json), so every chapter page must show one.
STRICT_LEDGERS = True
LEDGER_COLUMNS = {"claim", "paper", "ours", "verdict"}


def _has_ledger_table(headers: list[list[str]]) -> bool:
    return any(LEDGER_COLUMNS <= set(row) for row in headers)


def _chapter_number(page: str) -> str:
    return page.split("/")[1][:2]


def _screenshot(driver: "webdriver.Chrome", path: Path) -> None:
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    path.write_bytes(base64.b64decode(shot["data"]))


def _chapter_pages(site: Path) -> list[str]:
    return sorted(
        f"chapters/{p.parent.name}/" for p in (site / "chapters").glob("*/index.html")
    )


def _check_page(driver: "webdriver.Chrome", base: str, page: str, shots: Path) -> dict:
    """Open one page and check it; return its math state for further checks."""
    driver.get_log("browser")
    _requested_urls(driver)  # drop what earlier pages logged
    driver.get(base + page)
    status = driver.execute_async_script(_WAIT_FOR_MATHJAX)
    assert status == "ok", f"{page}: {status}"
    images = driver.execute_async_script(_WAIT_FOR_IMAGES)
    time.sleep(0.5)  # let late requests (fonts, MathJax extensions) reach the log

    broken = [src for src, width in images if not width]
    assert not broken, f"{page}: figures that did not load: {broken}"

    math = driver.execute_script(_MATH_STATE)
    assert math["pending"] == 0, f"{page}: {math['pending']} of {math['marked']} formulas not typeset"
    assert math["errors"] == 0, f"{page}: MathJax reported {math['errors']} TeX errors"
    for raw in ("$$", "\\[", "\\]", "\\(", "\\)"):
        assert raw not in math["text"], f"{page}: raw TeX delimiter {raw!r} left in the text"

    name = page.strip("/").replace("/", "_") or "home"
    _screenshot(driver, shots / f"{name}.png")

    urls = _requested_urls(driver)
    assert urls, f"{page}: the performance log recorded no request at all"
    remote = [u for u in urls if not _is_local(u)]
    assert not remote, f"{page}: requests that left this machine: {remote}"

    severe = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, f"{page}: console errors: {severe}"
    return math


def test_home_page_renders_math_offline(served_site, browser, tmp_path: Path) -> None:
    base, _ = served_site
    math = _check_page(browser, base, "", tmp_path)
    assert math["typeset"] > 0, "the home page's formulas produced no mjx-container"
    assert (tmp_path / "home.png").stat().st_size > 10_000


@pytest.fixture(scope="module")
def chapter_layouts(served_site, browser, tmp_path_factory) -> dict[str, dict]:
    """Open every chapter page once at 1280 px: the offline checks of _check_page, then its layout."""
    base, site = served_site
    pages = _chapter_pages(site)
    assert pages, "the built site has no chapter pages"
    assert browser.execute_script("return window.innerWidth") >= 1264, "the browser window is not 1280 px wide"
    shots = tmp_path_factory.mktemp("chapters")
    layouts = {}
    for page in pages:
        math = _check_page(browser, base, page, shots)
        shot = shots / (page.strip("/").replace("/", "_") + ".png")
        assert shot.stat().st_size > 10_000, f"{page}: empty screenshot"
        layouts[page] = browser.execute_script(_LAYOUT) | {"math": math}
    return layouts


def test_chapter_pages_render_offline(chapter_layouts) -> None:
    for page, layout in chapter_layouts.items():
        math = layout["math"]
        if math["marked"]:
            assert math["typeset"] > 0, f"{page}: {math['marked']} formulas marked but no mjx-container"
        assert "$$" not in math["text"], f"{page}: raw $$ left in the text"


def test_tables_and_equations_fit_the_column_at_1280px(chapter_layouts) -> None:
    problems = []
    for page, layout in chapter_layouts.items():
        problems += [f"{page}: {item}" for item in layout["overflowing"]]
        if layout["page_width"] > layout["viewport"]:
            problems.append(f"{page}: the page is {layout['page_width']} px wide in a {layout['viewport']} px window")
    assert not problems, "wider than the content column at 1280 px:\n" + "\n".join(problems)


def test_chapter_pages_show_their_claims_ledger(chapter_layouts) -> None:
    missing = []
    for page, layout in chapter_layouts.items():
        committed = (ROOT / "docs" / "figures" / _chapter_number(page) / "claims.json").exists()
        if (committed or STRICT_LEDGERS) and not _has_ledger_table(layout["headers"]):
            missing.append(f"{page} (claims.json {'committed' if committed else 'missing'})")
    assert not missing, f"chapter pages without a claims-ledger table (claim, paper, ours, verdict): {missing}"


def test_ledger_page_lists_every_chapter(served_site, browser) -> None:
    base, site = served_site
    browser.get(base + "claims/")
    found = browser.execute_script("""
        return [...document.querySelectorAll("article h2 a")].map((a) => [a.textContent.trim(), a.pathname]);
    """)
    linked = {path.strip("/") + "/" for _, path in found}
    missing = [page for page in _chapter_pages(site) if page not in linked]
    assert not missing, f"the claims-ledger page has no section for {missing}: {found}"
    headers = browser.execute_script("""
        return [...document.querySelectorAll("article table")].map(
            (t) => [...(t.tHead || t).rows[0].cells].map((c) => c.textContent.trim().toLowerCase()));
    """)
    committed = sorted(p.parent.name for p in (ROOT / "docs" / "figures").glob("*/claims.json"))
    ledgers = [h for h in headers if LEDGER_COLUMNS <= set(h)]
    assert len(ledgers) == len(committed), f"{len(ledgers)} ledger tables for the committed ledgers of {committed}"


def test_api_pages_show_docstrings_as_written(served_site, browser) -> None:
    base, _ = served_site
    browser.get(base + "api/nn/")
    shown = browser.execute_script("""
        const article = document.querySelector("article");
        const heading = document.getElementById("minideep.nn.Conv2d");
        const conv = heading && heading.closest(".doc-object");
        const text = (el) => { const copy = el.cloneNode(true);
            copy.querySelectorAll("details.mkdocstrings-source").forEach((n) => n.remove());
            document.body.appendChild(copy); const t = copy.innerText; copy.remove(); return t; };
        return {conv: conv ? text(conv) : null, page: text(article),
                italic: conv ? [...conv.querySelectorAll("em")].map((e) => e.textContent) : []};
    """)
    assert shown["conv"] is not None, "api/nn/ shows no minideep.nn.Conv2d"
    assert "s*h + i" in shown["conv"] and "s*w + j" in shown["conv"], "Conv2d's formula lost its stars"
    assert not any("h + i" in e for e in shown["italic"]), f"Conv2d's formula turned italic: {shown['italic']}"
    assert "Example::" not in shown["page"], "a docstring shows reST's 'Example::' literally"


def test_instant_navigation_typesets_the_new_page(served_site, browser) -> None:
    """Material swaps pages without a reload; the new page's math must be typeset too."""
    base, _ = served_site
    browser.get(base + "getting-started/")
    assert browser.execute_async_script(_WAIT_FOR_MATHJAX) == "ok"
    browser.get_log("browser")
    # A click on the site's own logo link goes home through instant navigation: the
    # marker set on this window survives only if the page was swapped, not reloaded.
    browser.execute_script(
        "window.__minideepMarker = 'same window';"
        "document.querySelector('a.md-header__button.md-logo').click();"
    )
    deadline = time.time() + 30
    math = {}
    while time.time() < deadline:
        math = browser.execute_script(_MATH_STATE)
        if browser.current_url == base and math["marked"] and not math["pending"]:
            break
        time.sleep(0.2)
    assert browser.current_url == base, f"instant navigation did not reach home: {browser.current_url}"
    assert browser.execute_script("return window.__minideepMarker") == "same window", (
        "the page was reloaded: navigation.instant is not active"
    )
    counts = {k: v for k, v in math.items() if k != "text"}
    assert math.get("marked") and math["pending"] == 0, f"math after instant navigation: {counts}"
    assert browser.execute_script("return typeof window.MathJax.typesetPromise") == "function"
    severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, f"console errors after instant navigation: {severe}"


def test_diagnostics_page_shows_its_chapter_figures(served_site, browser, tmp_path: Path) -> None:
    base, _ = served_site
    _check_page(browser, base, "diagnostics/", tmp_path)  # offline, math typeset, every image loaded
    figures = browser.execute_script("""
        return [...document.querySelectorAll("article figure")].map((f) => {
            const img = f.querySelector("img"), caption = f.querySelector("figcaption");
            return [img ? img.naturalWidth : 0, caption ? caption.textContent.trim() : ""];
        });
    """)
    assert len(figures) >= 6, f"the diagnostics page shows {len(figures)} figures"
    for width, caption in figures:
        assert width > 0 and caption.startswith("Chapter 0"), (width, caption)
