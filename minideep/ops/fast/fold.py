"""Thin-channel folding: a narrow input's kernel rows as one wide product.

A stride-1 convolution as shifted products (see ``shifted_conv.py``) runs one product of
width C_in per kernel offset (i, j), reading row q + i*Wp + j of the flattened padded image.
For an RGB image (C_in = 3) those products are too thin to run fast. Copying the kw pixels of
a kernel row side by side, row r of ``wide`` = [X[r], X[r+1], ..., X[r+kw-1]], turns the kw
products of kernel row i into one product of width kw*C_in at offset i*Wp.
"""
from __future__ import annotations

from ...backend import get_array_module

#: Inputs with fewer channels than this get their kernel rows folded.
FOLD_BELOW_CHANNELS = 16


def should_fold(c_in: int, kw: int) -> bool:
    return c_in < FOLD_BELOW_CHANNELS and kw > 1


def fold_rows(flat, kw: int):
    """(R - kw + 1, kw*C) rows [X[r], X[r+1], ..., X[r+kw-1]] of a flat (R, C) image."""
    xp = get_array_module(flat)
    rows = max(flat.shape[0] - (kw - 1), 0)
    return xp.concatenate([flat[j : j + rows] for j in range(kw)], axis=1)
