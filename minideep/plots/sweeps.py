"""Sweeps: a metric against a hyperparameter, mean +- std over seeds."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .figures import PathLike, _new_figure, _note, _save, _style
from .checks import _array, _is_number, _nonempty, _reject_tensor, _to_percent


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
