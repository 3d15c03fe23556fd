"""The affine map of a fully connected layer, y = x W^T + b, as one op."""
from __future__ import annotations

from ..autograd import Function, Tensor


class LinearBackward(Function):
    """y = x W^T + b, with x (..., in), W (out, in), b (out,).

    dL/dx = G W,   dL/dW = G^T x,   dL/db = sum of G over all but the last axis.
    """

    def forward(self, x, weight, bias=None):
        if weight.ndim != 2:
            raise ValueError(f"linear: weight must have shape (out_features, in_features), got {weight.shape}")
        if x.ndim < 1 or x.shape[-1] != weight.shape[1]:
            raise ValueError(
                f"linear: input has {x.shape[-1] if x.ndim else 0} features (shape {x.shape}) "
                f"but weight expects {weight.shape[1]} (weight shape {weight.shape})"
            )
        if bias is not None and bias.shape != weight.shape[:1]:
            raise ValueError(f"linear: bias has shape {bias.shape} but weight has {weight.shape[0]} outputs")
        self.x, self.weight = x, weight
        y = x @ weight.T
        return y if bias is None else y + bias

    def backward(self, grad):
        x2 = self.x.reshape(-1, self.x.shape[-1])  # fold leading axes into one batch axis
        g2 = grad.reshape(-1, grad.shape[-1])
        gx = grad @ self.weight if self.needs_input_grad[0] else None
        gw = g2.T @ x2 if self.needs_input_grad[1] else None
        if len(self.needs_input_grad) == 2:
            return gx, gw
        return gx, gw, g2.sum(axis=0)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Fully connected layer: ``x @ weight.T + bias`` with ``weight`` shaped (out, in) as in PyTorch."""
    return LinearBackward()(x, weight) if bias is None else LinearBackward()(x, weight, bias)
