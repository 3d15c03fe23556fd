"""Every figure the course shows: gradient flow, chain-rule gains, curves with bands, gates, lesions.

Each function takes plain Python/NumPy data (dicts, lists, arrays; never Tensors or
models, so that a figure can be redrawn from ``results.json`` alone), writes one PNG to
``path`` and returns that path as a :class:`~pathlib.Path`. Figures are drawn without
pyplot on a :class:`matplotlib.figure.Figure` with the Agg renderer, so no global
backend state is touched and everything works headless.

Conventions shared by every figure:

- size: a single panel is 8 x 5 inches at :data:`DPI` = 150, i.e. 1200 x 750 pixels;
  :func:`figure_size_px` gives the size of any grid of panels;
- colours: the Okabe-Ito palette (:data:`PALETTE`), safe for colour-blind readers; ordered
  quantities (epochs, magnitudes, gate activity) use the ``viridis`` colormap and signed ones
  (biases, block outputs) ``RdBu_r`` centred on zero;
- accuracies come in as fractions in [0, 1] (as in ``results.json``) and are drawn in percent;
- log axes: zeros, negative values and NaN cannot be drawn on a log scale, so they are left
  out and the panel says how many were left out;
- writing is atomic: the PNG goes to a temporary file in the target folder, then
  :func:`os.replace` puts it in place, so a reader never sees half a figure. Parent folders
  are created.

matplotlib is imported on first use: ``import minideep.plots`` works without it, and a
plotting call without it raises an ImportError that says how to install it.

The examples assume ``import numpy as np`` and ``from minideep import plots``.
"""
from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .results import write_atomic

#: Resolution of every PNG, in dots per inch.
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


# --------------------------------------------------------------------------- input checks


def _reject_tensor(fn: str, name: str, value: Any) -> None:
    if hasattr(value, "requires_grad") or hasattr(value, "parameters"):
        raise TypeError(
            f"{fn}: {name} must be plain numbers or NumPy arrays, got {type(value).__name__}; "
            "use tensor.numpy() or the diagnostics' dict output"
        )


def _array(fn: str, name: str, values: Any, ndim: int | tuple[int, ...]) -> np.ndarray:
    """``values`` as a non-empty float array with the given number of axes."""
    _reject_tensor(fn, name, values)
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{fn}: {name} must be numbers, got {type(values).__name__}: {exc}") from None
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if arr.ndim not in ndims:
        raise ValueError(f"{fn}: {name} must have {' or '.join(map(str, ndims))} axes, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{fn}: {name} is empty (shape {arr.shape}); nothing to plot")
    return arr


def _nonempty(fn: str, name: str, value: Any) -> None:
    if value is None or len(value) == 0:
        raise ValueError(f"{fn}: {name} is empty; nothing to plot")


def _positive(values: np.ndarray) -> tuple[np.ndarray, int]:
    """A copy with zero, negative and non-finite values set to NaN (skipped by matplotlib), and their count."""
    values = np.array(values, dtype=float)
    bad = ~(np.isfinite(values) & (values > 0))
    values[bad] = np.nan
    return values, int(bad.sum())


def _check_unit_interval(fn: str, name: str, values: np.ndarray, what: str) -> None:
    """Refuse finite values outside [0, 1] (NaN is allowed: a missing epoch or seed)."""
    finite = values[np.isfinite(values)]
    if finite.size and (finite.min() < 0 or finite.max() > 1):
        raise ValueError(f"{fn}: {name} {what}, got values in [{finite.min():g}, {finite.max():g}]")


def _to_percent(fn: str, name: str, values: np.ndarray) -> np.ndarray:
    """Fractions in [0, 1] (NaN allowed) as percentages; anything else is an error."""
    _check_unit_interval(fn, name, values, "must be fractions in [0, 1] (accuracy as in results.json)")
    return values * 100.0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _run_values(fn: str, name: str, run: Any, key: str | None) -> np.ndarray:
    """One run as a 1-D array: a list of numbers, or a list of per-epoch dicts read at ``key``."""
    _reject_tensor(fn, name, run)
    if isinstance(run, Mapping):
        raise TypeError(f"{fn}: {name} must be a list of per-epoch values or records, got a dict")
    run = list(run)
    _nonempty(fn, name, run)
    if isinstance(run[0], Mapping):
        if key is None:
            raise ValueError(f"{fn}: {name} holds per-epoch dicts but no metric key was given")
        if not any(key in record for record in run):
            raise ValueError(f"{fn}: {name} has no {key!r}; its records have keys {sorted(run[0])}")
        return np.array([float(record.get(key, np.nan)) for record in run])
    return _array(fn, name, run, 1)


def _runs_matrix(fn: str, name: str, runs: Any, key: str | None = None) -> np.ndarray:
    """One run or a list of runs (one per seed) as an ``(n_runs, n_epochs)`` array, NaN-padded.

    A run is a list of numbers (one per epoch) or of per-epoch dicts; runs may differ in
    length (an unfinished seed), the shorter ones are padded with NaN.
    """
    _reject_tensor(fn, name, runs)
    if isinstance(runs, Mapping):
        raise TypeError(f"{fn}: {name} must be a run or a list of runs, got a dict with keys {sorted(runs)[:5]}")
    if isinstance(runs, np.ndarray):
        runs = runs.tolist()
    runs = list(runs)
    _nonempty(fn, name, runs)
    if isinstance(runs[0], Mapping) or _is_number(runs[0]):
        runs = [runs]
    rows = [_run_values(fn, f"{name}[{i}]", run, key) for i, run in enumerate(runs)]
    matrix = np.full((len(rows), max(len(row) for row in rows)), np.nan)
    for i, row in enumerate(rows):
        matrix[i, : len(row)] = row
    return matrix


def _epochs(runs: Any, n: int) -> np.ndarray:
    """x values of a curve: the records' ``epoch`` field when the longest run has one, else 1..n."""
    if isinstance(runs, (list, tuple)) and runs:
        candidates = runs if not isinstance(runs[0], (list, tuple)) else max(runs, key=len)
        if len(candidates) == n and all(isinstance(r, Mapping) and "epoch" in r for r in candidates):
            return np.array([float(r["epoch"]) for r in candidates])
    return np.arange(1, n + 1, dtype=float)


def _draw_band(ax: Any, x: np.ndarray, matrix: np.ndarray, band: str | None, label: str | None, **style: Any):
    """Mean line over runs with a min-max or +-1 std band; one run is drawn as a plain line."""
    with _quiet_nan_warnings():
        mean = np.nanmean(matrix, axis=0)
        if band == "minmax":
            low, high = np.nanmin(matrix, axis=0), np.nanmax(matrix, axis=0)
        elif band == "std":
            std = np.nanstd(matrix, axis=0)
            low, high = mean - std, mean + std
    (line,) = ax.plot(x, mean, label=label, lw=1.6, **style)
    if band and matrix.shape[0] > 1:
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, lw=0)
    return line


@contextlib.contextmanager
def _quiet_nan_warnings():
    """nanmean of an all-NaN column (every seed stopped earlier) is NaN, which is what we want."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _check_band(fn: str, band: str | None) -> None:
    if band not in ("minmax", "std", None):
        raise ValueError(f"{fn}: band must be 'minmax', 'std' or None, got {band!r}")


# --------------------------------------------------------------------------- gradient flow


def _flow_matrix(fn: str, name: str, records: Any) -> tuple[list[str], np.ndarray]:
    """Per-epoch ``{layer: mean |grad|}`` records as (layer names, ``(n_epochs, n_layers)`` array)."""
    _reject_tensor(fn, name, records)
    if isinstance(records, Mapping):
        records = [records]
    records = list(records)
    _nonempty(fn, name, records)
    names: list[str] | None = None
    rows = []
    for i, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise TypeError(
                f"{fn}: {name}[{i}] must be a dict {{layer name: mean |grad|}}, got {type(record).__name__}"
            )
        _nonempty(fn, f"{name}[{i}]", record)
        if names is None:
            names = [str(k) for k in record]
        elif [str(k) for k in record] != names:
            raise ValueError(
                f"{fn}: {name}[{i}] has layers {list(record)[:4]}... ({len(record)}), "
                f"but {name}[0] has {names[:4]}... ({len(names)}); every epoch must list the same layers in order"
            )
        rows.append(_array(fn, f"{name}[{i}] values", list(record.values()), 1))
    return names, np.stack(rows)


def _layer_ticks(ax: Any, names: Sequence[str], axis: str = "x", *, rotate: bool = True) -> None:
    """Layer names as tick labels (vertical on the x axis), thinned when there are very many."""
    idx = _thin_ticks(len(names))
    labels = [names[i] for i in idx]
    if axis == "x":
        ax.set_xticks(idx, labels, rotation=90 if rotate else 0, fontsize=_tick_fontsize(len(idx)))
    else:
        ax.set_yticks(idx, labels, fontsize=_tick_fontsize(len(idx)))


def _flow_panel(fn: str, name: str, value: Any) -> tuple[list[str], np.ndarray, list[str] | None]:
    """A panel's data: per-epoch records, or ``{label: record}`` for labelled lines on the same layers."""
    if isinstance(value, Mapping) and value and all(isinstance(v, Mapping) for v in value.values()):
        names, matrix = _flow_matrix(fn, name, list(value.values()))
        return names, matrix, [str(k) for k in value]
    names, matrix = _flow_matrix(fn, name, value)
    return names, matrix, None


def _draw_flow(ax: Any, names: list[str], matrix: np.ndarray, labels: list[str] | None, epochs, norm, cmap) -> None:
    """Mean |grad| against layer, one line per record: coloured by epoch, or labelled."""
    x = np.arange(len(names))
    values, n_masked = _positive(matrix)
    for i, row in enumerate(values):
        if labels is not None:
            ax.plot(x, row, label=labels[i], lw=1.5, ms=3, **{**_style(i), "marker": "o", "markevery": None})
        elif len(values) == 1:
            ax.plot(x, row, color=PALETTE[0], lw=1.5, marker="o", ms=3)
        else:
            ax.plot(x, row, color=cmap(norm(epochs[i])), lw=1.0, alpha=0.8, marker="o", ms=2)
    _log_axis(ax, "y", n_masked)
    _layer_ticks(ax, names)
    ax.set_xlim(-0.5, len(names) - 0.5)
    ax.set_xlabel("layer (input → output)")
    ax.set_ylabel(_GRAD_W_LABEL)
    ax.grid(True, axis="y", which="major", alpha=0.3)
    if labels is not None:
        ax.legend(fontsize=8)


def gradient_flow_panels(
    panels: Mapping[str, Any],
    path: PathLike,
    *,
    title: str | None = "Gradient flow",
    ncols: int | None = None,
    sharey: bool = True,
) -> Path:
    """Gradient-flow panels side by side: mean |dL/dW| per layer, on a shared log scale.

    Each panel is the coursework's gradient-flow plot for one network. A panel's value is
    either a list of per-epoch records ``[{layer name: mean |grad|}, ...]`` (one line per
    epoch, coloured by epoch with a colorbar; epochs numbered from 1), or a dict
    ``{label: record}`` of networks with the same layers (one labelled line each, e.g. the
    eight init x BN combinations at initialisation).

    Args:
        panels: ``{panel title: records}``; the records of one panel list the same layers in order.
        path: where the PNG goes (``.png``).
        title: figure title, or None.
        ncols: panels per row (default: all in one row, at most 4).
        sharey: one y range for all panels, so magnitudes compare across networks.

    Returns:
        ``Path(path)``.

    Example:
        >>> a = [{"conv0": 1e-3, "conv1": 2e-3, "fc": 5e-3}, {"conv0": 8e-4, "conv1": 1e-3, "fc": 3e-3}]
        >>> plots.gradient_flow_panels({"VGG08": a, "VGG38": a}, "figures/flow.png")
        PosixPath('figures/flow.png')
    """
    fn = "gradient_flow_panels"
    _reject_tensor(fn, "panels", panels)
    if not isinstance(panels, Mapping):
        raise TypeError(f"{fn}: panels must be a dict {{title: records}}, got {type(panels).__name__}")
    _nonempty(fn, "panels", panels)
    data = {str(t): _flow_panel(fn, f"panels[{t!r}]", v) for t, v in panels.items()}
    ncols = ncols or min(len(data), 4)
    nrows = math.ceil(len(data) / ncols)
    mpl = _matplotlib()
    fig, axes = _new_figure(nrows, ncols, sharey=sharey)
    # One epoch scale for all panels, so the same colour means the same epoch everywhere.
    n_epochs = max((len(m) for _, m, labels in data.values() if labels is None), default=1)
    cmap = mpl.colormaps[SEQUENTIAL_CMAP]
    norm = mpl.colors.Normalize(vmin=1, vmax=max(n_epochs, 2))
    flat = axes.ravel()
    for ax, (panel_title, (names, matrix, labels)) in zip(flat, data.items()):
        _draw_flow(ax, names, matrix, labels, np.arange(1, len(matrix) + 1), norm, cmap)
        ax.set_title(panel_title)
    for ax in flat[len(data):]:
        ax.set_visible(False)
    if n_epochs > 1:
        mappable = mpl.cm.ScalarMappable(norm=norm, cmap=cmap)
        fig.colorbar(mappable, ax=list(flat[: len(data)]), label="epoch", shrink=0.9)
    if title:
        fig.suptitle(title)
    return _save(fig, path, fn)


def gradient_flow(
    records: Sequence[Mapping[str, float]] | Mapping[str, float],
    path: PathLike,
    *,
    title: str = "Gradient flow: mean |dL/dW| per layer",
    epochs: Sequence[float] | None = None,
) -> Path:
    """The coursework's gradient-flow plot: mean |dL/dW| per layer, one line per epoch, log y.

    For every weight tensor W (biases left out) the statistic is ``mean(|dL/dW|)`` over its
    elements, taken from the last minibatch of each epoch. Layers run along x in network
    order (input to output, names vertical); lines are coloured by epoch from the
    sequential colormap, with a colorbar. A vanishing gradient shows as lines that fall by
    orders of magnitude towards the input.

    Args:
        records: per-epoch dicts ``{layer name: mean |grad|}``, all with the same layers in
            the same order (``results.json["variants"][name]["gradient_flow"]``); one dict
            alone is drawn as a single line.
        path: where the PNG goes (``.png``).
        title: figure title.
        epochs: the epoch number of each record (default 1, 2, ...), for the colour scale.

    Returns:
        ``Path(path)``.

    Example:
        >>> records = [{"conv0": 1e-9, "conv1": 1e-6, "fc": 1e-3}, {"conv0": 2e-9, "conv1": 1e-6, "fc": 5e-4}]
        >>> plots.gradient_flow(records, "figures/vgg38_flow.png", title="VGG38")
        PosixPath('figures/vgg38_flow.png')
    """
    fn = "gradient_flow"
    names, matrix = _flow_matrix(fn, "records", records)
    epochs_arr = _epoch_numbers(fn, epochs, len(matrix))
    mpl = _matplotlib()
    fig, axes = _new_figure()
    cmap = mpl.colormaps[SEQUENTIAL_CMAP]
    low, high = float(epochs_arr.min()), float(epochs_arr.max())
    norm = mpl.colors.Normalize(vmin=low, vmax=high if high > low else low + 1)
    _draw_flow(axes[0, 0], names, matrix, None, epochs_arr, norm, cmap)
    if len(matrix) > 1:
        fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes[0, 0], label="epoch")
    axes[0, 0].set_title(title)
    return _save(fig, path, fn)


def _epoch_numbers(fn: str, epochs: Sequence[float] | None, n: int) -> np.ndarray:
    if epochs is None:
        return np.arange(1, n + 1, dtype=float)
    arr = _array(fn, "epochs", epochs, 1)
    if len(arr) != n:
        raise ValueError(f"{fn}: epochs has {len(arr)} entries but there are {n} records")
    return arr


def gradient_flow_pair(
    records_a: Sequence[Mapping[str, float]],
    records_b: Sequence[Mapping[str, float]],
    labels: Sequence[str],
    path: PathLike,
    *,
    title: str | None = "Gradient flow",
) -> Path:
    """Two gradient-flow plots side by side on a shared log y axis (the papers' Figure 2 pair).

    Typically VGG08 (trains) beside VGG38 (does not): the same statistic as
    :func:`gradient_flow`, one line per epoch, one colour scale for both panels.

    Args:
        records_a, records_b: per-epoch ``{layer name: mean |grad|}`` records of each network.
        labels: the two panel titles, e.g. ``("VGG08", "VGG38")``.
        path: where the PNG goes (``.png``).
        title: figure title, or None.

    Returns:
        ``Path(path)``.

    Example:
        >>> plots.gradient_flow_pair(flow_vgg08, flow_vgg38, ("VGG08", "VGG38"), "figures/pair.png")
        PosixPath('figures/pair.png')
    """
    labels = list(labels)
    if len(labels) != 2 or labels[0] == labels[1]:
        raise ValueError(f"gradient_flow_pair: labels must be two different titles, got {labels}")
    return gradient_flow_panels({labels[0]: records_a, labels[1]: records_b}, path, title=title, ncols=2)


def gradient_flow_heatmap(
    records: Sequence[Mapping[str, float]],
    path: PathLike,
    *,
    title: str = "Gradient flow: log10 mean |dL/dW|, layers x epochs",
    epochs: Sequence[float] | None = None,
) -> Path:
    """Layers x epochs heatmap of ``log10 mean |dL/dW|``: the whole run's gradient flow at a glance.

    Rows are layers in network order (input at the top), columns are epochs. Zero or
    non-finite entries have no logarithm and are drawn in light grey.

    Args:
        records: per-epoch dicts ``{layer name: mean |grad|}``, as for :func:`gradient_flow`.
        path: where the PNG goes (``.png``).
        title: figure title.
        epochs: the epoch number of each record (default 1, 2, ...), for the x tick labels.

    Returns:
        ``Path(path)``.

    Example:
        >>> plots.gradient_flow_heatmap(results["variants"]["vgg38"]["gradient_flow"], "figures/heat.png")
        PosixPath('figures/heat.png')
    """
    fn = "gradient_flow_heatmap"
    names, matrix = _flow_matrix(fn, "records", records)
    epochs_arr = _epoch_numbers(fn, epochs, len(matrix))
    values, n_masked = _positive(matrix.T)
    logs = np.ma.masked_invalid(np.log10(values))
    mpl = _matplotlib()
    fig, axes = _new_figure()
    ax = axes[0, 0]
    cmap = mpl.colormaps[SEQUENTIAL_CMAP].with_extremes(bad="0.85")
    limits = {"vmin": -10.0, "vmax": 0.0} if logs.count() == 0 else {}
    image = ax.imshow(logs, aspect="auto", interpolation="nearest", cmap=cmap, **limits)
    _layer_ticks(ax, names, axis="y")
    cols = _thin_ticks(len(epochs_arr), most=12)
    ax.set_xticks(cols, [f"{e:g}" for e in epochs_arr[cols]])
    ax.set_xlabel("epoch")
    ax.set_ylabel("layer (input at top)")
    fig.colorbar(image, ax=ax, label=r"$\log_{10}$ mean $|\partial L / \partial W|$")
    if n_masked:
        _note(ax, f"{n_masked} zero/NaN value(s) in grey")
    ax.set_title(title)
    return _save(fig, path, fn)


# --------------------------------------------------------------------------- chain rule


def chain_rule_gains(
    gains: Sequence[float],
    grad_norms: Sequence[float],
    path: PathLike,
    layer_names: Sequence[str] | None = None,
    *,
    title: str = "The chain rule, layer by layer",
) -> Path:
    """Per-layer gains and the gradient norms they multiply into, on two stacked log panels.

    With ``h_0 .. h_L`` the points where the gradient is measured (input to output) and
    ``n_l = ||dL/dh_l||``, layer l's gain is ``g_l = n_{l-1} / n_l``, so

        n_l = n_L * g_L * g_{L-1} * ... * g_{l+1}

    Top: each gain as a stem from 1 (the dashed line; below it the layer shrinks the
    gradient, above it the layer grows it). Bottom: the measured norms ``n_l`` beside the
    norms rebuilt as ``n_L`` times the product of the gains above, with their largest
    relative difference, so a student sees the identity hold.

    Args:
        gains: ``g_1 .. g_L`` (length L = len(grad_norms) - 1), or ``g_0 .. g_L`` (length
            L + 1, where ``g_0`` is the gain into ``h_0`` and is drawn but not needed).
        grad_norms: ``n_0 .. n_L``, length L + 1 >= 2.
        path: where the PNG goes (``.png``).
        layer_names: names of ``h_0 .. h_L`` for the x ticks (default ``0 .. L``).
        title: figure title.

    Returns:
        ``Path(path)``.

    Example:
        >>> norms = [1e-6, 1e-4, 1e-2, 1.0]
        >>> plots.chain_rule_gains([0.01, 0.01, 0.01], norms, "figures/gains.png")
        PosixPath('figures/gains.png')
    """
    fn = "chain_rule_gains"
    norms = _array(fn, "grad_norms", grad_norms, 1)
    gains_arr = _array(fn, "gains", gains, 1)
    n = len(norms)
    if n < 2 or len(gains_arr) not in (n - 1, n):
        raise ValueError(
            f"{fn}: gains must have len(grad_norms) - 1 or len(grad_norms) entries, "
            f"got {len(gains_arr)} gains for {n} norms"
        )
    padded = len(gains_arr) == n - 1
    if padded:
        gains_arr = np.concatenate([[np.nan], gains_arr])  # g_0 unknown: nothing before h_0
    names = [str(i) for i in range(n)] if layer_names is None else [str(s) for s in layer_names]
    if len(names) != n:
        raise ValueError(f"{fn}: layer_names has {len(names)} entries but grad_norms has {n}")

    # n_l rebuilt from the output end: n_L times the product of the gains of the layers above l.
    rebuilt = norms[-1] * np.concatenate([np.cumprod(gains_arr[:0:-1])[::-1], [1.0]])
    x = np.arange(n)
    fig, axes = _new_figure(2, 1, sharex=True)
    top, bottom = axes[0, 0], axes[1, 0]

    shown, n_bad = _positive(gains_arr)
    n_bad -= int(padded)  # the padded g_0 is not a bad value
    top.vlines(x, 1.0, shown, color=PALETTE[0], lw=2)
    gain_label = r"gain $g_l = \|\partial L/\partial h_{l-1}\| / \|\partial L/\partial h_l\|$"
    top.plot(x, shown, "o", color=PALETTE[0], ms=4, label=gain_label)
    top.axhline(1.0, color="0.2", ls="--", lw=1, label="gain 1: gradient passed on unchanged")
    _log_axis(top, "y", n_bad)
    finite_gains = shown[np.isfinite(shown)]
    if finite_gains.size:  # always show the line at 1 with some room on both sides of it
        top.set_ylim(min(finite_gains.min(), 1.0) / 1.5, max(finite_gains.max(), 1.0) * 1.5)
    top.set_ylabel(r"gain $g_l$ (ratio, no unit)")
    top.set_title("Per-layer gains")
    top.legend(fontsize=8)
    top.grid(True, axis="y", alpha=0.3)

    measured, n_bad_norms = _positive(norms)
    predicted, _ = _positive(rebuilt)
    bottom.plot(x, measured, "-o", color=PALETTE[0], ms=4, label=r"measured $\|\partial L/\partial h_l\|$")
    product_label = r"$\|\partial L/\partial h_L\| \times \prod_{k>l} g_k$"
    bottom.plot(x, predicted, "x", color=PALETTE[3], ms=7, mew=1.5, label=product_label)
    _log_axis(bottom, "y", n_bad_norms)
    with np.errstate(all="ignore"):
        rel = np.abs(rebuilt - norms) / np.abs(norms)
    if np.isfinite(rel).any():
        bottom.text(0.99, 0.02, f"largest relative difference: {np.nanmax(rel[np.isfinite(rel)]):.1e}",
                    transform=bottom.transAxes, ha="right", va="bottom", fontsize=8)
    bottom.set_ylabel(r"gradient norm $\|\partial L/\partial h_l\|$")
    bottom.set_xlabel("layer output $h_l$ (input → output)")
    bottom.set_title("Gradient norms: the running product of the gains")
    bottom.legend(fontsize=8)
    bottom.grid(True, axis="y", alpha=0.3)
    _layer_ticks(bottom, names, rotate=layer_names is not None)
    fig.suptitle(title)
    return _save(fig, path, fn)


def gains_grid(
    curves: Mapping[Any, Any],
    path: PathLike,
    *,
    title: str = "Gradient norm per layer",
    ylabel: str = r"gradient norm $\|\partial L/\partial h_l\|$",
    xlabel: str = "layer $l$ (0 = input)",
) -> Path:
    """Gradient norm (or gain) per layer for several (activation, init) combinations, log y.

    One line per combination. Keys that are 2-tuples such as ``("sigmoid", "Glorot")`` get
    their colour from the first element and their line style from the second, so a 3 x 3
    grid of combinations stays readable; other keys get one palette colour each. Curves may
    differ in length (different depths).

    ``curves`` may also be ``{panel title: {key: curve}}`` for several panels on a shared y
    axis, e.g. at initialisation and after training.

    Args:
        curves: ``{key: 1-D array of values per layer}`` or ``{panel: {key: array}}``.
        path: where the PNG goes (``.png``).
        title, ylabel, xlabel: labels.

    Returns:
        ``Path(path)``.

    Example:
        >>> curves = {("sigmoid", "Glorot"): [1e-8, 1e-5, 1e-2], ("relu", "He"): [0.9, 1.0, 1.1]}
        >>> plots.gains_grid(curves, "figures/grid.png")
        PosixPath('figures/grid.png')
    """
    fn = "gains_grid"
    _reject_tensor(fn, "curves", curves)
    if not isinstance(curves, Mapping):
        raise TypeError(f"{fn}: curves must be a dict, got {type(curves).__name__}")
    _nonempty(fn, "curves", curves)
    nested = all(isinstance(v, Mapping) for v in curves.values())
    panels = {str(k): v for k, v in curves.items()} if nested else {"": curves}
    for panel, lines in panels.items():
        _nonempty(fn, f"curves[{panel!r}]", lines)
    keys = list(dict.fromkeys(k for lines in panels.values() for k in lines))
    paired = all(isinstance(k, tuple) and len(k) == 2 for k in keys)
    firsts = list(dict.fromkeys(k[0] for k in keys)) if paired else []
    seconds = list(dict.fromkeys(k[1] for k in keys)) if paired else []

    fig, axes = _new_figure(1, len(panels), sharey=True)
    for ax, (panel, lines) in zip(axes[0], panels.items()):
        n_masked = 0
        for key, values in lines.items():
            arr, bad = _positive(_array(fn, f"curves[{key!r}]", values, 1))
            n_masked += bad
            if paired:
                style = {"color": PALETTE[firsts.index(key[0]) % len(PALETTE)],
                         "ls": ("-", "--", ":", "-.")[seconds.index(key[1]) % 4]}
                label = f"{key[0]}, {key[1]}"
            else:
                style, label = _style(keys.index(key)), str(key)
            ax.plot(np.arange(len(arr)), arr, label=label, lw=1.5, **style)
        _log_axis(ax, "y", n_masked)
        _integer_x(ax)
        ax.set_xlabel(xlabel)
        ax.grid(True, axis="y", alpha=0.3)
        if panel:
            ax.set_title(panel)
    axes[0, 0].set_ylabel(ylabel)
    handles, labels = axes[0, -1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8)
    fig.suptitle(title)
    return _save(fig, path, fn)


# --------------------------------------------------------------------------- training curves


_METRIC_ALIASES = {"loss": ("loss",), "accuracy": ("accuracy", "acc"), "acc": ("acc", "accuracy")}


def _is_accuracy(metric: str) -> bool:
    return "acc" in metric.lower()


def _metric_label(metric: str) -> str:
    """y label with its unit, e.g. "train_acc" -> "training accuracy (%)"."""
    split = {"train": "training ", "val": "validation ", "test": "test "}.get(metric.split("_")[0], "")
    if _is_accuracy(metric):
        return f"{split}accuracy (%)"
    if "loss" in metric.lower():
        return f"{split}{_LOSS_LABEL}"
    return metric


def training_curves(
    histories: Mapping[str, Any],
    path: PathLike,
    metrics: Sequence[str] = ("loss", "accuracy"),
    *,
    band: str | None = "minmax",
    splits: Sequence[str] = ("train", "val"),
    title: str | None = "Training curves",
) -> Path:
    """Loss and accuracy against epoch for several variants, with a band over seeds.

    One panel per metric, one colour per variant, one line style per split (train dashed,
    validation solid, test dotted). A variant with several runs (one per seed) is drawn as
    the mean with a band: min-max (as McInroe) or mean +- one standard deviation. The key of
    a split's metric is ``f"{split}_{metric}"`` (``accuracy`` also matches ``acc``, so
    ``train_acc`` and ``train_accuracy`` both work); the x values are the records' ``epoch``
    field when they have one, else 1, 2, ...

    Args:
        histories: ``{variant: run}`` or ``{variant: [run, run, ...]}`` where a run is a list
            of per-epoch dicts, e.g. ``{"train_loss": 4.2, "val_loss": 4.3, "train_acc": 0.05,
            "val_acc": 0.04}``. Accuracies are fractions in [0, 1].
        path: where the PNG goes (``.png``).
        metrics: the panels, e.g. ``("loss", "accuracy")``.
        band: ``"minmax"``, ``"std"`` or None.
        splits: which splits to draw when present.
        title: figure title, or None.

    Returns:
        ``Path(path)``.

    Example:
        >>> run = [{"epoch": 1, "train_loss": 2.0, "val_loss": 2.1, "train_acc": 0.3, "val_acc": 0.28}]
        >>> plots.training_curves({"vgg08": [run, run]}, "figures/curves.png")
        PosixPath('figures/curves.png')
    """
    fn = "training_curves"
    _check_band(fn, band)
    _reject_tensor(fn, "histories", histories)
    if not isinstance(histories, Mapping):
        raise TypeError(f"{fn}: histories must be a dict {{variant: runs}}, got {type(histories).__name__}")
    _nonempty(fn, "histories", histories)
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    _nonempty(fn, "metrics", metrics)
    splits = [s for s in splits if s]
    mpl = _matplotlib()

    fig, axes = _new_figure(1, len(metrics), sharex=True)
    for ax, metric in zip(axes[0], metrics):
        aliases = _METRIC_ALIASES.get(metric, (metric,))
        drawn = 0
        for i, (variant, runs) in enumerate(histories.items()):
            runs_list = _as_runs(fn, variant, runs)
            keys = _record_keys(runs_list)
            for split in splits:
                key = next((f"{split}_{a}" for a in aliases if f"{split}_{a}" in keys), None)
                if key is None:
                    continue
                matrix = _runs_matrix(fn, f"histories[{variant!r}]", runs_list, key)
                if _is_accuracy(metric):
                    matrix = _to_percent(fn, f"histories[{variant!r}] {key}", matrix)
                style = {**_style(i), "ls": SPLIT_STYLES.get(split, "-.")}
                _draw_band(ax, _epochs(runs_list, matrix.shape[1]), matrix, band, None, **style)
                drawn += 1
        if not drawn:
            wanted = [f"{s}_{a}" for s in splits for a in aliases]
            raise ValueError(f"{fn}: no variant has any of {wanted} for metric {metric!r}")
        _integer_x(ax)
        ax.set_xlabel("epoch")
        ax.set_ylabel(_metric_label(metric))
        ax.set_title(metric)
        ax.grid(True, alpha=0.3)

    # Two legends: colour = variant, line style = split (matplotlib keeps only one per axes).
    line = mpl.lines.Line2D
    variant_handles = [line([], [], lw=2, label=str(v), **_style(i)) for i, v in enumerate(histories)]
    split_handles = [line([], [], color="0.2", ls=SPLIT_STYLES.get(s, "-."), label=s) for s in splits]
    band_note = {"minmax": "band: min-max over seeds", "std": "band: mean ± 1 std over seeds"}.get(band or "", "")
    fig.legend(handles=variant_handles, loc="outside right upper", fontsize=8, title="variant")
    fig.legend(handles=split_handles, loc="outside right lower", fontsize=8, title=band_note or None, title_fontsize=7)
    if title:
        fig.suptitle(title)
    return _save(fig, path, fn)


def _as_runs(fn: str, variant: Any, runs: Any) -> list:
    """A variant's history as a list of runs, each a list of per-epoch records."""
    _reject_tensor(fn, f"histories[{variant!r}]", runs)
    if isinstance(runs, Mapping) or isinstance(runs, str):
        raise TypeError(f"{fn}: histories[{variant!r}] must be a list of per-epoch dicts or a list of such lists")
    runs = list(runs)
    _nonempty(fn, f"histories[{variant!r}]", runs)
    return [runs] if isinstance(runs[0], Mapping) else [list(r) for r in runs]


def _record_keys(runs: list) -> set[str]:
    return {k for run in runs for record in run if isinstance(record, Mapping) for k in record}


def band_grid(
    grid: Mapping[str, Mapping[str, Mapping[str, Any]]],
    path: PathLike,
    *,
    metric: str = "train_acc",
    band: str | None = "minmax",
    title: str | None = "Training accuracy and stability",
    ylabel: str | None = None,
) -> Path:
    """McInroe's figure: rows = architecture, columns = BN or not, one colour per init, bands over seeds.

    Each panel holds one (row, column) cell; each series in it (e.g. He and Glorot
    initialisation) is the mean over runs with a min-max (or +- std) band. Colours are the
    same for a series in every panel, and all panels share their axes.

    Args:
        grid: ``{row: {column: {series: runs}}}``, where runs are a list of runs (one per
            seed), each a list of per-epoch dicts read at ``metric`` or a list of numbers.
        path: where the PNG goes (``.png``).
        metric: the per-epoch key to draw; a key containing ``acc`` is taken as fractions in
            [0, 1] and drawn in percent.
        band: ``"minmax"``, ``"std"`` or None.
        title: figure title, or None.
        ylabel: y label (default from the metric).

    Returns:
        ``Path(path)``.

    Example:
        >>> runs = [[0.1, 0.5, 0.9], [0.1, 0.4, 0.8], [0.2, 0.6, 0.95]]
        >>> grid = {"Tiny-YOLO": {"BN": {"He": runs, "Glorot": runs}, "no BN": {"He": runs}}}
        >>> plots.band_grid(grid, "figures/mcinroe.png")
        PosixPath('figures/mcinroe.png')
    """
    fn = "band_grid"
    _check_band(fn, band)
    _reject_tensor(fn, "grid", grid)
    if not isinstance(grid, Mapping) or not all(isinstance(v, Mapping) for v in grid.values()):
        raise TypeError(f"{fn}: grid must be nested dicts {{row: {{column: {{series: runs}}}}}}")
    _nonempty(fn, "grid", grid)
    rows = list(grid)
    cols = list(dict.fromkeys(c for row in grid.values() for c in row))
    _nonempty(fn, "grid's columns", cols)
    series = list(dict.fromkeys(s for row in grid.values() for cell in row.values() for s in cell))
    _nonempty(fn, "grid's series", series)

    fig, axes = _new_figure(len(rows), len(cols), sharex=True, sharey=True)
    for r, row in enumerate(rows):
        for c, col in enumerate(cols):
            ax = axes[r, c]
            cell = grid[row].get(col, {})
            for name, runs in cell.items():
                matrix = _runs_matrix(fn, f"grid[{row!r}][{col!r}][{name!r}]", runs, metric)
                if _is_accuracy(metric):
                    matrix = _to_percent(fn, f"grid[{row!r}][{col!r}][{name!r}]", matrix)
                label = f"{name} (n={matrix.shape[0]})"
                _draw_band(ax, np.arange(1, matrix.shape[1] + 1), matrix, band, label, **_style(series.index(name)))
            if not cell:
                _note(ax, "no runs")
            ax.set_title(f"{row} · {col}")
            _integer_x(ax)
            ax.grid(True, alpha=0.3)
            if cell:
                ax.legend(fontsize=8, loc="best")
            if r == len(rows) - 1:
                ax.set_xlabel("epoch")
            if c == 0:
                ax.set_ylabel(ylabel or _metric_label(metric))
    if title:
        band_text = {"minmax": "mean, min-max band", "std": "mean ± 1 std"}.get(band or "", "mean")
        fig.suptitle(f"{title} ({band_text} over seeds)")
    return _save(fig, path, fn)


def depth_curves(
    curves: Mapping[str, Mapping[int, Any]],
    path: PathLike,
    *,
    key: str = "train_loss",
    band: str | None = "minmax",
    log_y: bool = True,
    ylabel: str = "training loss (cross-entropy, nats)",
    title: str | None = "Training loss by depth",
) -> Path:
    """Srivastava et al.'s optimisation figure: one panel per depth, plain vs highway in each.

    Each panel is one depth (10, 20, 50, 100 layers, ...) with one line per network
    family; families keep their colour in every panel, and the panels share their y axis
    (log scale by default, as in the paper) so depths compare directly.

    Args:
        curves: ``{family: {depth: runs}}``, e.g. ``{"plain": {10: losses, 50: losses},
            "highway": {...}}``; runs are per-epoch numbers, per-epoch dicts read at ``key``,
            or a list of such runs (drawn as the mean with a band).
        path: where the PNG goes (``.png``).
        key: the per-epoch key when runs hold dicts.
        band: ``"minmax"``, ``"std"`` or None.
        log_y: log y axis (non-positive values are left out and counted).
        ylabel, title: labels.

    Returns:
        ``Path(path)``.

    Example:
        >>> curves = {"plain": {10: [2.3, 1.0, 0.5], 50: [2.3, 2.3, 2.3]},
        ...           "highway": {10: [2.3, 0.8, 0.3], 50: [2.3, 0.9, 0.4]}}
        >>> plots.depth_curves(curves, "figures/depth.png")
        PosixPath('figures/depth.png')
    """
    fn = "depth_curves"
    _check_band(fn, band)
    _reject_tensor(fn, "curves", curves)
    if not isinstance(curves, Mapping) or not all(isinstance(v, Mapping) for v in curves.values()):
        raise TypeError(f"{fn}: curves must be nested dicts {{family: {{depth: runs}}}}")
    _nonempty(fn, "curves", curves)
    depths = sorted({d for by_depth in curves.values() for d in by_depth}, key=lambda d: (str(type(d)), d))
    _nonempty(fn, "curves' depths", depths)
    ncols = min(len(depths), 4)
    nrows = math.ceil(len(depths) / ncols)
    fig, axes = _new_figure(nrows, ncols, sharey=True)
    flat = axes.ravel()
    for ax, depth in zip(flat, depths):
        n_masked = 0
        for i, (family, by_depth) in enumerate(curves.items()):
            if depth not in by_depth:
                continue
            matrix = _runs_matrix(fn, f"curves[{family!r}][{depth!r}]", by_depth[depth], key)
            if log_y:
                matrix, bad = _positive(matrix)
                n_masked += bad
            _draw_band(ax, np.arange(1, matrix.shape[1] + 1), matrix, band, str(family), **_style(i))
        if log_y:
            _log_axis(ax, "y", n_masked)
        ax.set_title(f"{depth} layers")
        _integer_x(ax)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    for r in range(nrows):
        axes[r, 0].set_ylabel(ylabel)
    for ax in flat[len(depths):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return _save(fig, path, fn)


# --------------------------------------------------------------------------- highway analysis


def _heatmap(fig: Any, ax: Any, values: np.ndarray, title: str, label: str, *, signed: bool) -> None:
    """Layers x units image with its own colorbar below: signed values centred on zero, else 0..1."""
    if signed:
        finite = values[np.isfinite(values)]
        bound = float(np.abs(finite).max()) if finite.size else 1.0
        limits = {"cmap": DIVERGING_CMAP, "vmin": -(bound or 1.0), "vmax": bound or 1.0}
    else:
        limits = {"cmap": SEQUENTIAL_CMAP, "vmin": 0.0, "vmax": 1.0}
    image = ax.imshow(values, aspect="auto", interpolation="nearest", **limits)
    fig.colorbar(image, ax=ax, location="bottom", shrink=0.85, label=label)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("unit")
    ax.set_ylabel("layer (depth ↓)")


def gate_activity(
    mean_gate: Any,
    example_gate: Any,
    block_outputs: Any,
    biases: Any,
    path: PathLike,
    *,
    title: str = "Highway network: transform gates and block outputs",
) -> Path:
    """The highway analysis figure of Srivastava et al. (2015): four layers x units panels.

    From left to right: the transform-gate biases ``b_T`` after training (diverging colours
    centred on 0; a 1-D array of one value per layer is drawn as a curve over depth
    instead), the mean transform-gate activity ``T(x)`` over a batch (0..1), one example's
    gate outputs (0..1), and that example's block outputs ``y = H(x) T(x) + x (1 - T(x))``
    (centred on 0). Depth runs downwards in every panel, so the "stripes" of outputs that a
    layer carries unchanged line up across panels.

    Args:
        mean_gate: ``(n_layers, n_units)`` mean of T over a batch, values in [0, 1].
        example_gate: ``(n_layers, n_units)`` T for one example, values in [0, 1].
        block_outputs: ``(n_layers, n_units)`` the block outputs for that example.
        biases: ``(n_layers, n_units)`` transform-gate biases, or ``(n_layers,)`` one per layer.
        path: where the PNG goes (``.png``).
        title: figure title.

    Returns:
        ``Path(path)``.

    Example:
        >>> gates = np.random.rand(50, 50)
        >>> plots.gate_activity(gates, gates, np.random.randn(50, 50), -2 * np.ones(50), "figures/gates.png")
        PosixPath('figures/gates.png')
    """
    fn = "gate_activity"
    mean_arr = _array(fn, "mean_gate", mean_gate, 2)
    example_arr = _array(fn, "example_gate", example_gate, 2)
    outputs_arr = _array(fn, "block_outputs", block_outputs, 2)
    bias_arr = _array(fn, "biases", biases, (1, 2))
    shapes = {"mean_gate": mean_arr.shape, "example_gate": example_arr.shape, "block_outputs": outputs_arr.shape}
    if len(set(shapes.values())) != 1 or bias_arr.shape[0] != mean_arr.shape[0] or (
        bias_arr.ndim == 2 and bias_arr.shape != mean_arr.shape
    ):
        raise ValueError(
            f"{fn}: the panels must share (n_layers, n_units): got {shapes} and biases {bias_arr.shape}"
        )
    for name, arr in (("mean_gate", mean_arr), ("example_gate", example_arr)):
        _check_unit_interval(fn, name, arr, "holds gate values, which lie in [0, 1]")

    fig, axes = _new_figure(1, 4)
    ax_bias, ax_mean, ax_example, ax_out = axes[0]
    if bias_arr.ndim == 2:
        _heatmap(fig, ax_bias, bias_arr, "Transform gate biases", r"bias $b_T$", signed=True)
    else:
        depth = np.arange(len(bias_arr))
        ax_bias.plot(bias_arr, depth, "-o", color=PALETTE[0], ms=3)
        ax_bias.axvline(0.0, color="0.3", lw=0.8, ls="--")
        ax_bias.set_ylim(len(bias_arr) - 0.5, -0.5)  # depth downwards, as in the images beside it
        ax_bias.set_xlabel(r"mean bias $b_T$ of the layer")
        ax_bias.set_ylabel("layer (depth ↓)")
        ax_bias.set_title("Transform gate biases", fontsize=10)
        ax_bias.grid(True, alpha=0.3)
    _heatmap(fig, ax_mean, mean_arr, "Mean transform gate outputs", r"mean $T(x)$ over the batch", signed=False)
    _heatmap(fig, ax_example, example_arr, "Transform gate outputs (one example)", r"$T(x)$", signed=False)
    _heatmap(fig, ax_out, outputs_arr, "Block outputs (same example)", "output $y$", signed=True)
    fig.suptitle(title)
    return _save(fig, path, fn)


def gate_activity_by_class(
    class_means: Mapping[str, Any],
    path: PathLike,
    *,
    title: str = "Mean transform gate activity by class",
) -> Path:
    """How the mean transform-gate activity differs between classes (Srivastava et al.).

    With one value per layer for each class, one panel holds a curve per class (mean gate
    activity against depth). With a ``(n_layers, n_units)`` map per class, each class gets
    its own heatmap panel (up to four per row), all on the 0..1 scale.

    Args:
        class_means: ``{class label: (n_layers,) or (n_layers, n_units) mean T(x)}``,
            values in [0, 1], all of the same shape.
        path: where the PNG goes (``.png``).
        title: figure title.

    Returns:
        ``Path(path)``.

    Example:
        >>> plots.gate_activity_by_class({"0": np.random.rand(20), "7": np.random.rand(20)}, "figures/cls.png")
        PosixPath('figures/cls.png')
    """
    fn = "gate_activity_by_class"
    _reject_tensor(fn, "class_means", class_means)
    if not isinstance(class_means, Mapping):
        raise TypeError(f"{fn}: class_means must be a dict {{class: array}}, got {type(class_means).__name__}")
    _nonempty(fn, "class_means", class_means)
    arrays = {str(k): _array(fn, f"class_means[{k!r}]", v, (1, 2)) for k, v in class_means.items()}
    shapes = {k: a.shape for k, a in arrays.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"{fn}: every class needs the same shape, got {shapes}")
    for k, arr in arrays.items():
        _check_unit_interval(fn, f"class_means[{k!r}]", arr, "holds gate values, which lie in [0, 1]")

    if next(iter(arrays.values())).ndim == 1:
        fig, axes = _new_figure()
        ax = axes[0, 0]
        for i, (label, arr) in enumerate(arrays.items()):
            ax.plot(np.arange(len(arr)), arr, label=f"class {label}", lw=1.5, **_style(i))
        ax.set_ylim(0, 1)
        _integer_x(ax)
        ax.set_xlabel("layer (input → output)")
        ax.set_ylabel(r"mean transform gate activity $T(x)$ (0..1)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, ncols=2 if len(arrays) > 6 else 1)
        ax.set_title(title)
        return _save(fig, path, fn)

    ncols = min(len(arrays), 4)
    nrows = math.ceil(len(arrays) / ncols)
    fig, axes = _new_figure(nrows, ncols)
    for ax, (label, arr) in zip(axes.ravel(), arrays.items()):
        _heatmap(fig, ax, arr, f"class {label}", r"mean $T(x)$", signed=False)
    for ax in axes.ravel()[len(arrays):]:
        ax.set_visible(False)
    fig.suptitle(title)
    return _save(fig, path, fn)


def lesion_curve(
    layers: Sequence[int] | Sequence[str],
    accuracies: Sequence[float],
    baseline: float,
    path: PathLike,
    *,
    chance: float | None = None,
    title: str = "Lesioning: accuracy with one layer removed",
    xlabel: str = "lesioned layer",
) -> Path:
    """Test accuracy when each layer in turn is lesioned, against the intact network's accuracy.

    A lesioned highway layer has its transform gate forced shut (T = 0), so it passes its
    input on unchanged. Points near the dashed line mark layers the network does not need;
    a dip marks a layer it relies on. The chance level is drawn dotted when given.

    Args:
        layers: the lesioned layers, as indices (numeric x axis) or names (one tick each).
        accuracies: accuracy with that layer lesioned, fractions in [0, 1], same length.
        baseline: accuracy of the intact network, a fraction in [0, 1].
        path: where the PNG goes (``.png``).
        chance: chance accuracy (e.g. 0.1 for ten classes), or None.
        title, xlabel: labels.

    Returns:
        ``Path(path)``.

    Example:
        >>> plots.lesion_curve(range(1, 11), [0.2] + [0.97] * 9, 0.975, "figures/lesion.png", chance=0.1)
        PosixPath('figures/lesion.png')
    """
    fn = "lesion_curve"
    _reject_tensor(fn, "layers", layers)
    layers = list(layers)
    _nonempty(fn, "layers", layers)
    acc = _to_percent(fn, "accuracies", _array(fn, "accuracies", accuracies, 1))
    if len(acc) != len(layers):
        raise ValueError(f"{fn}: {len(layers)} layers but {len(acc)} accuracies")
    base = _to_percent(fn, "baseline", _array(fn, "baseline", [baseline], 1))[0]
    numeric = all(_is_number(layer) for layer in layers)
    x = np.asarray(layers, dtype=float) if numeric else np.arange(len(layers))

    fig, axes = _new_figure()
    ax = axes[0, 0]
    ax.plot(x, acc, "-o", color=PALETTE[0], ms=4, lw=1.5, label="accuracy with the layer lesioned")
    ax.axhline(base, color=PALETTE[3], ls="--", lw=1.5, label=f"no lesion ({base:.1f}%)")
    if chance is not None:
        chance_pct = _to_percent(fn, "chance", _array(fn, "chance", [chance], 1))[0]
        ax.axhline(chance_pct, color="0.4", ls=":", lw=1.2, label=f"chance ({chance_pct:.1f}%)")
    if numeric:
        _integer_x(ax)
    else:
        _layer_ticks(ax, [str(layer) for layer in layers])
    ax.set_ylim(0, 100)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title)
    return _save(fig, path, fn)


# --------------------------------------------------------------------------- hyperparameter sweeps


def errorbar_sweep(
    values: Sequence[float] | Sequence[str],
    means: Sequence[float] | Mapping[str, Sequence[float]],
    stds: Sequence[float] | Mapping[str, Sequence[float]],
    path: PathLike,
    xlabel: str,
    *,
    log_x: bool = True,
    percent: bool = True,
    ylabel: str = "validation accuracy (%)",
    title: str | None = None,
) -> Path:
    """Mean +- std over seeds against a hyperparameter, with error bars (the report's Tables 1-6).

    One series, or several given as dicts (e.g. ``{"train": ..., "validation": ...}``), each
    a line with error bars of one standard deviation. Numeric values go on a log x axis by
    default; when some are zero (weight decay 0) the axis is symmetric-log, linear below the
    smallest positive value, so zero still has a place. String values (combinations such as
    ``"lr 1e-3, wd 5e-4"``) get one tick each.

    Args:
        values: the hyperparameter values (numbers or labels), one per cell.
        means: mean over seeds per value, or ``{series: means}``; fractions in [0, 1] when
            ``percent`` is True.
        stds: standard deviation over seeds, same shape as ``means`` (>= 0).
        path: where the PNG goes (``.png``).
        xlabel: the hyperparameter and its unit, e.g. ``"learning rate"``.
        log_x: log x axis for numeric values.
        percent: means and stds are fractions, drawn in percent.
        ylabel, title: labels.

    Returns:
        ``Path(path)``.

    Example:
        >>> plots.errorbar_sweep([1e-2, 1e-3, 1e-4], [0.01, 0.60, 0.52], [0.0, 0.01, 0.012],
        ...                      "figures/lr.png", "learning rate")
        PosixPath('figures/lr.png')
    """
    fn = "errorbar_sweep"
    _reject_tensor(fn, "values", values)
    values = list(values)
    _nonempty(fn, "values", values)
    if isinstance(means, Mapping) != isinstance(stds, Mapping):
        raise TypeError(f"{fn}: means and stds must both be lists or both be dicts {{series: list}}")
    mean_series = dict(means) if isinstance(means, Mapping) else {"": means}
    std_series = dict(stds) if isinstance(stds, Mapping) else {"": stds}
    _nonempty(fn, "means", mean_series)
    if list(mean_series) != list(std_series):
        raise ValueError(f"{fn}: means has series {list(mean_series)} but stds has {list(std_series)}")
    numeric = all(_is_number(v) for v in values)
    x = np.asarray(values, dtype=float) if numeric else np.arange(len(values), dtype=float)

    fig, axes = _new_figure()
    ax = axes[0, 0]
    for i, name in enumerate(mean_series):
        mean = _array(fn, f"means[{name!r}]" if name else "means", mean_series[name], 1)
        std = _array(fn, f"stds[{name!r}]" if name else "stds", std_series[name], 1)
        if not len(mean) == len(std) == len(values):
            raise ValueError(f"{fn}: {len(values)} values but {len(mean)} means and {len(std)} stds")
        if (std[np.isfinite(std)] < 0).any():
            raise ValueError(f"{fn}: stds must be >= 0, got {std.tolist()}")
        if percent:
            mean, std = _to_percent(fn, "means", mean), std * 100.0
        order = np.argsort(x, kind="stable")
        ax.errorbar(x[order], mean[order], yerr=std[order], capsize=4, lw=1.5, ms=5,
                    label=name or None, **{**_style(i), "marker": "o", "markevery": None})
    if numeric and log_x:
        positive = x[x > 0]
        if positive.size == len(x):
            ax.set_xscale("log")
        elif positive.size:
            ax.set_xscale("symlog", linthresh=float(positive.min()))
            _note(ax, f"x axis: symmetric log, linear below {positive.min():g} (to show 0)")
    if not numeric:
        slanted = len(values) > 4  # long configuration labels would overlap when level
        ax.set_xticks(x, [str(v) for v in values], rotation=30 if slanted else 0, ha="right" if slanted else "center")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if any(mean_series):
        ax.legend(fontsize=8)
    ax.set_title(title or f"{ylabel.split(' (')[0]} vs {xlabel} (mean ± 1 std over seeds)")
    return _save(fig, path, fn)
