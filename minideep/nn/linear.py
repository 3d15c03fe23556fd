"""The fully connected layer."""
from __future__ import annotations

from typing import Any

from .. import ops
from ..autograd import Tensor
from ..backend import DEFAULT_DTYPE
from . import init as init_schemes
from .module import Module, Parameter


class Linear(Module):
    """y = x W^T + b.

    Shapes: input (*, in_features) -> output (*, out_features); weight (out_features,
    in_features), bias (out_features,).

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        bias: learn an additive bias (default True).
        init: weight init, a scheme name (see ``minideep.nn.init.SCHEMES``) or a callable
            ``scheme(shape, fan_in, fan_out, rng)``. None means PyTorch's default,
            U(+-1/sqrt(in_features)) for the weight and the bias; under every other scheme
            the bias starts at zero.
        dtype: the parameters' dtype (float32 by default).

    Example::

        layer = nn.Linear(20, 30)
        layer(md.tensor(np.ones((128, 20)))).shape  # (128, 30)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init: Any = None,
                 dtype: Any = DEFAULT_DTYPE) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Linear: {name} must be a positive int, got {value!r}")
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(init_schemes.initial_weight((out_features, in_features), init, dtype))
        if bias:
            self.bias = Parameter(init_schemes.initial_bias(out_features, in_features, init, dtype))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        return ops.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
