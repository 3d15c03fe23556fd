// MathJax 3 configuration for pymdownx.arithmatex in generic mode, which wraps
// inline math in \( \) and display math in \[ \] inside elements of class "arithmatex".
// MathJax itself is served by this site from assets/mathjax/ (no CDN).
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
  mj.typesetPromise();
});
