"""Training curves: loss and accuracy per epoch, with bands over seeds, and against depth."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .figures import (
    PathLike, SPLIT_STYLES, _LOSS_LABEL, _integer_x, _log_axis, _matplotlib, _new_figure, _note, _save, _style,
)
from .checks import _check_band, _draw_band, _epochs, _nonempty, _positive, _reject_tensor, _runs_matrix, _to_percent


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
