"""minideep: a runnable textbook on training very deep networks.

The public face of the engine::

    import minideep as md
    x = md.tensor([[1.0, 2.0]], requires_grad=True)
    y = (x * x).sum()
    y.backward()          # x.grad == 2 x
"""
from . import ops  # noqa: F401 - also attaches the Tensor operators
from .autograd import (
    Function, ModifiedInPlaceError, Tensor, enable_grad, is_grad_enabled, no_grad, sum_to, tensor, topological_order,
)
from .backend import get_num_threads, gpu_available, manual_seed, set_num_threads
from .gradcheck import gradcheck
from .ops import abs, cat, clip, col2im, exp, im2col, log, maximum, pad, sqrt, stack, tanh, where

# As ``import torch`` gives torch.nn, torch.nn.functional and torch.optim. Imported last: they
# use the engine above (the arrows still point down: nn and optim never import this file).
from . import nn, optim  # noqa: E402  isort: skip

__version__ = "0.1.0"

__all__ = [
    "Function", "ModifiedInPlaceError", "Tensor", "abs", "cat", "clip", "col2im", "enable_grad", "exp",
    "get_num_threads", "gpu_available", "gradcheck", "im2col", "is_grad_enabled", "log", "manual_seed", "maximum",
    "no_grad", "pad", "set_num_threads", "sqrt", "stack", "sum_to", "tanh", "tensor", "topological_order", "where",
    "nn", "ops", "optim",
]
