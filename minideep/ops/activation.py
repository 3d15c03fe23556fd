"""Activations and the (log-)softmax, written so that no exp can overflow."""
from __future__ import annotations

from ..autograd import Function, Tensor, normalize_axis
from ..backend import get_array_module
from . import fast


# --8<-- [start:relu]
class ReluBackward(Function):
    """y = max(x, 0).   dy/dx = 1 where x > 0, else 0."""

    def forward(self, x):
        self.positive = x > 0
        return x * self.positive

    def backward(self, grad):
        return grad * self.positive
# --8<-- [end:relu]


class LeakyReluBackward(Function):
    """y = x if x > 0 else a*x.   dy/dx = 1 where x > 0, else a."""

    def __init__(self, negative_slope: float) -> None:
        self.slope = negative_slope

    def forward(self, x):
        xp, a = get_array_module(x), x.dtype.type(self.slope)
        if 0 <= self.slope <= 1:
            # Then max(x, a*x) is the function: one pass, no where() (10x faster). And y > 0
            # exactly where x > 0, so backward reads the sign from y (alive anyway as the next
            # op's input) and no mask is kept: one byte per element less until backward.
            y = xp.multiply(x, a, out=xp.empty_like(x))  # an array even for a 0-d x (x * a is a scalar)
            self.y, self.positive = xp.maximum(x, y, out=y), None
            return self.y
        self.positive = x > 0
        return xp.where(self.positive, x, x * a)

    def backward(self, grad):
        # dy/dx = a + (1 - a) * [x > 0], built in place (np.where on strided views is ~10x slower).
        factor = (self.y > 0 if self.positive is None else self.positive).astype(grad.dtype)
        factor *= 1 - grad.dtype.type(self.slope)
        factor += grad.dtype.type(self.slope)
        factor *= grad
        return factor


# --8<-- [start:sigmoid]
class SigmoidBackward(Function):
    """y = 1 / (1 + e^-x).   dy/dx = y (1 - y).

    Computed from e^-|x|, which is at most 1, so no exponential overflows at |x| = 1000.
    """

    def forward(self, x):
        xp = get_array_module(x)
        e = xp.exp(-abs(x))
        self.y = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return self.y

    def backward(self, grad):
        return grad * self.y * (1 - self.y)
# --8<-- [end:sigmoid]


class SoftmaxBackward(Function):
    """y_i = e^{x_i} / sum_j e^{x_j} along ``axis``.   dL/dx = y * (g - sum(g * y))."""

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, x):
        xp = get_array_module(x)
        (self.axis,) = normalize_axis(self.axis, x.ndim, "softmax")  # our message, not NumPy's AxisError
        e = xp.exp(x - x.max(axis=self.axis, keepdims=True))  # shifting by the max keeps e <= 1
        self.y = e / e.sum(axis=self.axis, keepdims=True)
        return self.y

    def backward(self, grad):
        y = self.y
        return y * (grad - (grad * y).sum(axis=self.axis, keepdims=True))


class LogSoftmaxBackward(Function):
    """y_i = x_i - log sum_j e^{x_j} along ``axis``.   dL/dx = g - softmax(x) * sum(g)."""

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, x):
        (self.axis,) = normalize_axis(self.axis, x.ndim, "log_softmax")  # our message, not NumPy's AxisError
        self.y = log_softmax_array(x, self.axis)
        return self.y

    def backward(self, grad):
        xp = get_array_module(grad)
        return grad - xp.exp(self.y) * grad.sum(axis=self.axis, keepdims=True)


def log_softmax_array(x, axis: int):
    """log softmax on a raw array, with the log-sum-exp shifted by the max for stability."""
    xp = get_array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


def relu(x: Tensor) -> Tensor:
    """Rectified linear unit, max(x, 0)."""
    x = x if isinstance(x, Tensor) else Tensor(x)  # kernel_for looks at the array
    return fast.kernel_for("relu", ReluBackward, x.data)()(x)


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """Leaky ReLU: x for x > 0, ``negative_slope * x`` otherwise."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    return fast.kernel_for("leaky_relu", LeakyReluBackward, x.data)(negative_slope)(x)


def sigmoid(x: Tensor) -> Tensor:
    """Logistic sigmoid 1 / (1 + e^-x), stable for large |x|."""
    return SigmoidBackward()(x)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """Softmax along ``axis``."""
    return SoftmaxBackward(axis)(x)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """Log of the softmax along ``axis``, computed without overflow."""
    return LogSoftmaxBackward(axis)(x)
