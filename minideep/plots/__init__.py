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
- writing is atomic (:func:`minideep.results.write_atomic`): the PNG goes to a temporary
  file in the target folder, then :func:`os.replace` puts it in place, so a reader never
  sees half a figure. Parent folders are created.

matplotlib is imported on first use: ``import minideep.plots`` works without it, and a
plotting call without it raises an ImportError that says how to install it.

The examples assume ``import numpy as np`` and ``from minideep import plots``.

One file per subject: :mod:`~minideep.plots.figures` (sizes, palette, atomic writing),
:mod:`~minideep.plots.checks` (input checks), :mod:`~minideep.plots.gradients` (gradient
flow, chain-rule gains), :mod:`~minideep.plots.curves` (training curves, bands, depth),
:mod:`~minideep.plots.highway` (gates, lesions) and :mod:`~minideep.plots.sweeps`; every
public name is importable from ``minideep.plots``.
"""
from .curves import band_grid, depth_curves, training_curves
from .figures import DIVERGING_CMAP, DPI, PALETTE, SEQUENTIAL_CMAP, SPLIT_STYLES, figure_size_in, figure_size_px
from .gradients import (
    chain_rule_gains, gains_grid, gradient_flow, gradient_flow_heatmap, gradient_flow_pair, gradient_flow_panels,
)
from .highway import gate_activity, gate_activity_by_class, lesion_curve
from .sweeps import errorbar_sweep

__all__ = [
    "DIVERGING_CMAP", "DPI", "PALETTE", "SEQUENTIAL_CMAP", "SPLIT_STYLES", "band_grid", "chain_rule_gains",
    "depth_curves", "errorbar_sweep", "figure_size_in", "figure_size_px", "gains_grid", "gate_activity",
    "gate_activity_by_class", "gradient_flow", "gradient_flow_heatmap", "gradient_flow_pair", "gradient_flow_panels",
    "lesion_curve", "training_curves",
]
