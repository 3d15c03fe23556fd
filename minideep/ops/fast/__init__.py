"""Fast CPU kernels, one module per trick, and the one place where they are chosen.

The op files (``conv.py``, ``pool.py``, ``normalization.py``, ``activation.py``) hold the textbook algorithm;
each asks ``kernel_for`` which ``Function`` to run. The fast kernels compute the same values
(``tests/test_fast_ops.py`` checks forward and backward in float64) in less time on a CPU:

=======================  ====================================================================
``shifted_conv``         stride-1 convolution as shifted matrix products, no column matrix
``blocked``              the products in cache-sized blocks of rows
``parallel``             rows shared among ``backend.get_num_threads()`` Python threads
``fold``                 an RGB input's kernel rows folded into one wider product
``channels_last_im2col`` strided convolution by im2col on a channels-last copy
``channels_last_pool``   pooling in the input's memory layout, tiled gradients written once
``inplace_batch_norm``   batch norm with in-place passes and x_hat recomputed
``threaded_activation``  ReLU and leaky ReLU on shares of the batch, one per thread
=======================  ====================================================================

On a GPU (CuPy arrays) the plain ops run: im2col makes one large matrix product per
direction, which is what a GPU does best. ``use_fast_kernels(False)`` (or the environment
variable ``MINIDEEP_PLAIN_OPS=1``) runs the plain ops on the CPU too: for teaching, for
debugging, and for the tests, which run both.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

import numpy

from ...autograd import Function
from ...backend import get_array_module
from .channels_last_im2col import ChannelsLastConvolutionBackward
from .channels_last_pool import (
    ChannelsLastAdaptiveAvgPool2dBackward,
    ChannelsLastAvgPool2dBackward,
    ChannelsLastMaxPool2dBackward,
)
from .inplace_batch_norm import InPlaceBatchNormBackward
from .shifted_conv import ShiftedConvolutionBackward
from .threaded_activation import THREADED_ABOVE, ThreadedLeakyReluBackward, ThreadedReluBackward

_enabled = os.environ.get("MINIDEEP_PLAIN_OPS", "0") in ("", "0")


def fast_kernels_enabled() -> bool:
    """True when the ops may use the fast CPU kernels (the default; ``MINIDEEP_PLAIN_OPS=1`` turns them off)."""
    return _enabled


@contextlib.contextmanager
def use_fast_kernels(enabled: bool = True) -> Iterator[None]:
    """``with md.ops.use_fast_kernels(False):`` runs the plain (textbook) ops inside the block."""
    global _enabled
    previous, _enabled = _enabled, bool(enabled)
    try:
        yield
    finally:
        _enabled = previous


# --8<-- [start:kernel_for]
def kernel_for(op: str, plain: type[Function], x: Any, stride: tuple[int, int] | None = None) -> type[Function]:
    """The ``Function`` class that computes ``op`` on the array ``x``: a fast kernel or ``plain``."""
    if not _enabled or get_array_module(x) is not numpy:
        return plain  # the switch is off, or a GPU: one large im2col product per direction is right there
    if op == "conv2d":
        return ShiftedConvolutionBackward if stride == (1, 1) else ChannelsLastConvolutionBackward
    if op in ("relu", "leaky_relu") and x.size < THREADED_ABOVE:
        return plain  # too small to be worth sharing among threads
    fast = {
        "max_pool2d": ChannelsLastMaxPool2dBackward,
        "avg_pool2d": ChannelsLastAvgPool2dBackward,
        "adaptive_avg_pool2d": ChannelsLastAdaptiveAvgPool2dBackward,
        "batch_norm": InPlaceBatchNormBackward,
        "relu": ThreadedReluBackward,
        "leaky_relu": ThreadedLeakyReluBackward,
    }
    return fast.get(op, plain)
# --8<-- [end:kernel_for]
