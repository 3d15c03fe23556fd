"""minideep: a runnable textbook on training very deep networks.

The public face of the engine::

    import minideep as md
    x = md.tensor([[1.0, 2.0]], requires_grad=True)
    y = (x * x).sum()
    y.backward()          # x.grad == 2 x
"""
from . import ops as _ops  # noqa: F401 - attaches the Tensor operators
from .autograd import Function, Tensor, enable_grad, is_grad_enabled, no_grad, sum_to, tensor
from .backend import get_num_threads, gpu_available, manual_seed, set_num_threads
from .gradcheck import gradcheck
from .ops import abs, cat, clip, exp, log, maximum, pad, sqrt, stack, tanh, where

__version__ = "0.1.0"

__all__ = [
    "Function", "Tensor", "abs", "cat", "clip", "enable_grad", "exp", "get_num_threads", "gpu_available",
    "gradcheck", "is_grad_enabled", "log", "manual_seed", "maximum", "no_grad", "pad", "set_num_threads",
    "sqrt", "stack", "sum_to", "tanh", "tensor", "where",
]
