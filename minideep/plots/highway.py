"""Highway networks: gate activity per layer (and per class), and the lesioning curve."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .figures import DIVERGING_CMAP, PALETTE, PathLike, SEQUENTIAL_CMAP, _integer_x, _new_figure, _save, _style
from .checks import _array, _check_unit_interval, _is_number, _nonempty, _reject_tensor, _to_percent
from .gradients import _layer_ticks


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
