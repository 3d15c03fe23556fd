"""Differentiable primitives, one file per family; each op is a ``Function`` subclass."""
from . import tensor_methods  # noqa: F401 - attaches +, -, @, .sum(), ... to Tensor
from .activation import leaky_relu, log_softmax, relu, sigmoid, softmax
from .arithmetic import add, div, matmul, mul, neg, power, sub
from .conv import col2im, conv2d, im2col
from .conv_transpose import conv_transpose2d
from .dropout import dropout
from .fast import fast_kernels_enabled, use_fast_kernels
from .elementwise import abs, clip, exp, log, maximum, sqrt, tanh, where
from .linear import linear
from .loss import cross_entropy, mse_loss, nll_loss
from .normalization import batch_norm
from .pool import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from .reduction import max, mean, sum, var
from .shape import cat, flatten, getitem, pad, reshape, stack, transpose

__all__ = [
    "abs", "adaptive_avg_pool2d", "add", "avg_pool2d", "batch_norm", "cat", "clip", "col2im", "conv2d", "conv_transpose2d",
    "cross_entropy", "div", "dropout", "exp", "fast_kernels_enabled", "flatten", "getitem", "im2col", "leaky_relu", "linear", "log",
    "log_softmax", "matmul", "max", "max_pool2d", "maximum", "mean", "mse_loss", "mul", "neg",
    "nll_loss", "pad", "power", "relu", "reshape", "sigmoid", "softmax", "sqrt", "stack", "sub",
    "sum", "tanh", "transpose", "use_fast_kernels", "var", "where",
]
