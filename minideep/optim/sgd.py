"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay."""
from __future__ import annotations

from typing import Any, Iterable

from ..backend import get_array_module
from .optimizer import Optimizer, check_nonnegative


class SGD(Optimizer):
    r"""Stochastic gradient descent, with PyTorch's update rule.

    For each parameter $\theta$ with gradient $g_t$ at step $t$ (weight decay $\lambda$,
    momentum $\mu$, dampening $\tau$, learning rate $\eta$):

    $$
    \begin{aligned}
    g_t &\leftarrow g_t + \lambda\,\theta_{t-1} \\
    b_t &= \begin{cases} g_t & t = 1 \\ \mu\, b_{t-1} + (1 - \tau)\, g_t & t > 1 \end{cases} \\
    g_t &\leftarrow \begin{cases} g_t + \mu\, b_t & \text{nesterov} \\ b_t & \text{otherwise} \end{cases} \\
    \theta_t &= \theta_{t-1} - \eta\, g_t
    \end{aligned}
    $$

    The momentum buffer starts as the first gradient itself (no dampening on step 1), as
    in PyTorch. Without momentum the update is plain $\theta \leftarrow \theta - \eta\, g$.

    Args:
        params: ``model.named_parameters()`` (state keyed by name) or an iterable of parameters
            (keyed ``"0"``, ``"1"``, ... by position).
        lr: learning rate $\eta$.
        momentum: momentum factor $\mu$ (default 0).
        dampening: dampening $\tau$ of the momentum (default 0).
        weight_decay: L2 penalty $\lambda$ added to the gradient (default 0).
        nesterov: Nesterov momentum (needs momentum > 0 and dampening 0).

    Example:
        >>> opt = SGD(model.named_parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        >>> opt.zero_grad(); loss.backward(); opt.step()
    """

    hyperparameters = ("lr", "momentum", "dampening", "weight_decay", "nesterov")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(params, lr)
        check_nonnegative("SGD", momentum=momentum, dampening=dampening, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(f"SGD: nesterov momentum needs momentum > 0 and dampening 0, got momentum={momentum}, dampening={dampening}")
        self.momentum, self.dampening = float(momentum), float(dampening)
        self.weight_decay, self.nesterov = float(weight_decay), bool(nesterov)

    def update(self, name: str, param: Any, grad: Any, state: dict[str, Any]) -> None:
        if self.weight_decay != 0:
            grad = grad + self.weight_decay * param  # a new array: param.grad stays the loss gradient
        if self.momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                # xp.array, not .copy(): arithmetic on a 0-d array returns a scalar, which cannot update in place
                buf = state["momentum_buffer"] = get_array_module(param).array(grad, dtype=param.dtype)
            else:
                buf *= self.momentum
                buf += (1 - self.dampening) * grad
            grad = grad + self.momentum * buf if self.nesterov else buf
        param -= self.lr * grad
