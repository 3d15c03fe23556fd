"""The functional interface, imported as ``F`` (``import minideep.nn.functional as F``).

Names and signatures follow ``torch.nn.functional``; the ops themselves live in
``minideep/ops/``.
"""
from ..ops.activation import leaky_relu, log_softmax, relu, sigmoid, softmax
from ..ops.conv import col2im, conv2d, im2col
from ..ops.conv_transpose import conv_transpose2d
from ..ops.dropout import dropout
from ..ops.elementwise import tanh
from ..ops.linear import linear
from ..ops.loss import cross_entropy, mse_loss, nll_loss
from ..ops.normalization import batch_norm
from ..ops.pool import adaptive_avg_pool2d, avg_pool2d, max_pool2d

__all__ = [
    "adaptive_avg_pool2d", "avg_pool2d", "batch_norm", "col2im", "conv2d", "conv_transpose2d", "cross_entropy", "dropout",
    "im2col", "leaky_relu", "linear", "log_softmax", "max_pool2d", "mse_loss", "nll_loss", "relu", "sigmoid",
    "softmax", "tanh",
]
