"""The deep plain MLP of chapter 02 (Glorot & Bengio 2010; He et al. 2015): Linear then activation, repeated."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from .. import nn
from ..nn.init import Scheme


# --8<-- [start:plain_mlp]
def plain_mlp(depth: int, width: int, activation: str, init: str | Scheme, n_in: int, n_out: int,
              dtype: Any = np.float32) -> tuple[nn.Sequential, list[nn.Module]]:
    """``depth`` hidden layers (Linear then activation) and a Linear output layer.

    Returns the network and the modules whose outputs are h_1 .. h_L for the chain rule:
    every hidden activation and the output layer (so each gain covers one Linear plus its
    activation, and the last one the output layer). ``init`` is a scheme of
    :mod:`minideep.nn.init` (by name, e.g. ``"small_normal"``, ``"glorot_uniform"``,
    ``"he_normal"``); biases start at 0.
    """
    scheme = init
    layers: dict[str, nn.Module] = {}
    for k in range(1, depth + 1):
        layers[f"linear{k}"] = nn.Linear(n_in if k == 1 else width, width, init=scheme, dtype=dtype)
        layers[f"{activation}{k}"] = nn.make_activation(activation)
    layers["output"] = nn.Linear(width, n_out, init=scheme, dtype=dtype)
    modules = list(layers.values())
    return nn.Sequential(OrderedDict(layers)), modules[1::2] + [modules[-1]]
# --8<-- [end:plain_mlp]
