"""Gradient flow (mean |dL/dW| per layer) and the chain rule's gain per layer."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .figures import (
    PALETTE, PathLike, SEQUENTIAL_CMAP, _GRAD_W_LABEL, _integer_x, _log_axis, _matplotlib, _new_figure, _note, _save,
    _style, _thin_ticks, _tick_fontsize,
)
from .checks import _array, _nonempty, _positive, _reject_tensor


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
