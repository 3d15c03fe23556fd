"""Figure helpers shared by every plot: sizes, the palette, a pyplot-free Figure, atomic PNG writing."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..results import write_atomic


DPI = 150
#: Okabe & Ito (2008) colour-blind-safe palette; yellow goes last because it is faint on white.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
#: Colormap for ordered quantities (epochs, magnitudes, gate activity): perceptually uniform.
SEQUENTIAL_CMAP = "viridis"
#: Colormap for signed quantities centred on zero (gate biases, block outputs).
DIVERGING_CMAP = "RdBu_r"
#: Line style of each data split in curve figures.
SPLIT_STYLES = {"train": "--", "val": "-", "test": ":"}

_SINGLE_PANEL_IN = (8.0, 5.0)
_PANEL_WIDTH_IN = 6.0
_PANEL_HEIGHT_IN = 4.0
_MAX_WIDTH_IN = 16.0
_MARKERS = (None, "o", "s", "^", "D")
_GRAD_W_LABEL = r"mean $|\partial L / \partial W|$ per element"
_LOSS_LABEL = "cross-entropy loss (nats)"

PathLike = str | os.PathLike


# --------------------------------------------------------------------------- figure and file


def figure_size_in(nrows: int = 1, ncols: int = 1) -> tuple[float, float]:
    """Figure size in inches for a grid of ``nrows x ncols`` panels.

    One panel: 8 x 5. A grid: 6 inches per column (16 at most in all) and 4 per row, or 5
    when there is a single row.
    """
    if nrows == 1 and ncols == 1:
        return _SINGLE_PANEL_IN
    width = min(_MAX_WIDTH_IN, _PANEL_WIDTH_IN * ncols) if ncols > 1 else _SINGLE_PANEL_IN[0]
    height = _SINGLE_PANEL_IN[1] if nrows == 1 else _PANEL_HEIGHT_IN * nrows
    return width, height


def figure_size_px(nrows: int = 1, ncols: int = 1) -> tuple[int, int]:
    """Pixel size ``(width, height)`` of the PNG for a grid of panels, e.g. (1200, 750) for one."""
    width, height = figure_size_in(nrows, ncols)
    return round(width * DPI), round(height * DPI)


def _matplotlib() -> Any:
    """Import matplotlib on first need, with an install hint when it is missing."""
    try:
        import matplotlib  # noqa: PLC0415 - optional dependency, imported lazily
        import matplotlib.cm  # noqa: PLC0415, F401
        import matplotlib.colors  # noqa: PLC0415, F401
        import matplotlib.figure  # noqa: PLC0415, F401
        import matplotlib.lines  # noqa: PLC0415, F401
        import matplotlib.ticker  # noqa: PLC0415, F401
    except ImportError as exc:
        raise ImportError(
            "minideep.plots needs matplotlib: pip install matplotlib (or pip install 'minideep[run]')"
        ) from exc
    return matplotlib


def _new_figure(nrows: int = 1, ncols: int = 1, *, sharex: bool = False, sharey: bool = False):
    """A pyplot-free Figure with constrained layout and a 2-D array of axes."""
    mpl = _matplotlib()
    fig = mpl.figure.Figure(figsize=figure_size_in(nrows, ncols), dpi=DPI, layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=sharex, sharey=sharey, squeeze=False)
    return fig, axes


def _save(fig: Any, path: PathLike, fn: str) -> Path:
    """Write ``fig`` as a PNG to ``path`` atomically (:func:`minideep.results.write_atomic`)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{fn}: path must end in .png, got {str(path)!r}")
    # No "Software" version stamp, so the same data and matplotlib give the same bytes.
    return write_atomic(path, lambda handle: fig.savefig(handle, format="png", dpi=DPI, metadata={"Software": None}))


def _note(ax: Any, text: str) -> None:
    """A small grey remark in the lower-left corner of a panel (e.g. what was left out)."""
    ax.text(0.01, 0.01, text, transform=ax.transAxes, fontsize=7, color="0.35", ha="left", va="bottom")


def _style(i: int) -> dict[str, Any]:
    """Colour (and, past the palette's eight colours, a marker) of the i-th series."""
    marker = _MARKERS[(i // len(PALETTE)) % len(_MARKERS)]
    return {"color": PALETTE[i % len(PALETTE)], "marker": marker, "markevery": 0.1 if marker else None}


def _integer_x(ax: Any) -> None:
    """Whole-number x ticks: layers and epochs have no 2.5."""
    ax.xaxis.set_major_locator(_matplotlib().ticker.MaxNLocator(integer=True))


def _tick_fontsize(n: int) -> float:
    return 9 if n <= 12 else 7 if n <= 40 else 6


def _thin_ticks(n: int, most: int = 60) -> np.ndarray:
    """Indices of at most ``most`` evenly spaced tick positions out of ``n``."""
    return np.arange(0, n, max(1, math.ceil(n / most)))


def _log_axis(ax: Any, axis: str, n_masked: int) -> None:
    """Switch ``ax`` to a log scale and say how many values could not be drawn on it."""
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    if n_masked:
        _note(ax, f"{n_masked} zero/negative/NaN value(s) not shown on the log scale")
