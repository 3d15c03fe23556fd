// MathJax 3 configuration for pymdownx.arithmatex in generic mode, which wraps
// inline math in \( \) and display math in \[ \] inside elements of class "arithmatex".
// MathJax itself is served by this site from assets/mathjax/ (no CDN).

// MathJax 3 does not break long display equations. One wider than the column is scaled
// down to fit, but not below MIN_SCALE (smaller is hard to read); what is still too wide
// scrolls sideways inside the column (docs/stylesheets/extra.css).
var MIN_SCALE = 0.7;

function fitDisplayMath() {
  document.querySelectorAll("div.arithmatex > mjx-container[display='true']").forEach(function (math) {
    // MathJax may set its own font-size on the container (to match the text): scale that.
    if (math.dataset.baseFontSize === undefined) {
      math.dataset.baseFontSize = math.style.fontSize || "100%";
    }
    var base = parseFloat(math.dataset.baseFontSize);
    math.style.fontSize = base + "%";
    var room = math.clientWidth, scale = 1;
    if (room === 0 || math.scrollWidth <= room) {
      return;
    }
    scale = Math.max(MIN_SCALE, Math.floor(100 * room / math.scrollWidth) / 100);
    // Not everything scales with the font (rounding, fixed spacing): step down until it fits.
    for (;;) {
      math.style.fontSize = (base * scale).toFixed(1) + "%";
      if (math.scrollWidth <= room || scale <= MIN_SCALE) {
        break;
      }
      scale = Math.max(MIN_SCALE, scale - 0.02);
    }
  });
}

window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
    tags: "ams"
  },
  options: {
    // Typeset only what arithmatex marked, so code blocks with "$" stay as they are.
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex"
  },
  startup: {
    // The first page: typeset as usual, then fit the wide displays (startup.promise waits for both).
    pageReady: function () {
      return window.MathJax.startup.defaultPageReady().then(fitDisplayMath);
    }
  }
  // No chtml.fontURL: the component finds its fonts next to its own script
  // (assets/mathjax/output/chtml/fonts/woff-v2), on this site.
};

// With instant navigation a page change swaps the content without reloading scripts,
// so typeset again. On the first page MathJax typesets by itself once it has loaded.
document$.subscribe(function () {
  var mj = window.MathJax;
  if (!mj || !mj.startup || !mj.startup.output || !mj.typesetPromise) {
    return;
  }
  mj.startup.output.clearCache();
  mj.typesetClear();
  mj.texReset();
  mj.typesetPromise().then(fitDisplayMath);
});
window.addEventListener("resize", fitDisplayMath);
