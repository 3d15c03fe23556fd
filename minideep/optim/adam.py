"""Adam (coupled L2 weight decay) and AdamW (decoupled weight decay), with optional AMSGrad."""
from __future__ import annotations

from types import ModuleType
from typing import Any, Callable, Iterable

import numpy

from ..backend import get_array_module
from .optimizer import Optimizer, check_nonnegative


class Adam(Optimizer):
    r"""Adam (Kingma and Ba, 2015), with PyTorch's update rule.

    For each parameter $\theta$ with gradient $g_t$ at its step $t = 1, 2, \dots$
    ($m_0 = v_0 = \hat v_0 = 0$):

    $$
    \begin{aligned}
    g_t &\leftarrow g_t + \lambda\,\theta_{t-1} \qquad \text{(L2 weight decay; Adam only)} \\
    m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t \\
    v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2 \\
    \hat v_t &= \begin{cases} \max(\hat v_{t-1}, v_t) & \text{amsgrad} \\ v_t & \text{otherwise} \end{cases} \\
    \theta_t &= \theta_{t-1} - \frac{\eta}{1 - \beta_1^t}\,
                \frac{m_t}{\sqrt{\hat v_t} / \sqrt{1 - \beta_2^t} + \epsilon}
    \end{aligned}
    $$

    The bias corrections $1 - \beta^t$ undo the pull of $m_0 = v_0 = 0$ towards zero in
    the first steps. $\epsilon$ is added after dividing by $\sqrt{1-\beta_2^t}$, exactly
    where PyTorch adds it.

    On a GPU (CuPy arrays, without AMSGrad) the same lines run as one fused kernel per
    parameter (``cupy.fuse``) instead of ten: see `_fused_step`.

    Args:
        params: ``model.named_parameters()`` or an iterable of parameters.
        lr: learning rate $\eta$ (default 1e-3).
        betas: $(\beta_1, \beta_2)$, decay rates of the moment estimates (default (0.9, 0.999)).
        eps: $\epsilon$ (default 1e-8).
        weight_decay: $\lambda$, L2 penalty added to the gradient (default 0).
        amsgrad: normalise by the running maximum of $v_t$ (Reddi et al., 2018).

    Example:
        >>> opt = Adam(model.named_parameters())          # the coursework's optimizer
        >>> opt.zero_grad(); loss.backward(); opt.step()
    """

    hyperparameters = ("lr", "betas", "eps", "weight_decay", "amsgrad")
    decoupled_weight_decay = False

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ) -> None:
        owner = type(self).__name__
        super().__init__(params, lr)
        check_nonnegative(owner, eps=eps, weight_decay=weight_decay)
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"{owner}: betas must be two numbers in [0, 1), got {betas}")
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps, self.weight_decay, self.amsgrad = float(eps), float(weight_decay), bool(amsgrad)

    def update(self, name: str, param: Any, grad: Any, state: dict[str, Any]) -> None:
        xp = get_array_module(param)
        beta1, beta2 = self.betas
        step = state["step"]
        if "exp_avg" not in state:
            state["exp_avg"] = xp.zeros_like(param)
            state["exp_avg_sq"] = xp.zeros_like(param)
        if self.amsgrad and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = xp.zeros_like(param)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        if xp is not numpy and not self.amsgrad:  # CuPy: the whole update below as one kernel
            coupled = 0.0 if self.decoupled_weight_decay else self.weight_decay
            decay = 1 - self.lr * self.weight_decay if self.decoupled_weight_decay else 1.0
            _fused_step(xp)(param, grad, m, v, decay, coupled, beta1, beta2,
                            self.lr / (1 - beta1**step), (1 - beta2**step) ** 0.5, self.eps)
            return
        if self.weight_decay != 0:
            if self.decoupled_weight_decay:
                param *= 1 - self.lr * self.weight_decay
            else:
                grad = grad + self.weight_decay * param
        m += (1 - beta1) * (grad - m)  # = beta1 m + (1 - beta1) g, written as PyTorch's lerp
        v *= beta2
        v += (1 - beta2) * grad * grad
        if self.amsgrad:
            xp.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]
        step_size = self.lr / (1 - beta1**step)
        denom = xp.sqrt(v) / (1 - beta2**step) ** 0.5 + self.eps
        param -= step_size * m / denom


_FUSED: dict[ModuleType, Callable[..., None]] = {}


def _fused_step(xp: ModuleType) -> Callable[..., None]:
    """Adam's update (the NumPy lines of `Adam.update`) fused into one elementwise kernel by ``xp.fuse``.

    Launched one operation at a time, the update is about ten kernels per parameter, each
    reading and writing whole arrays; fused, it is one pass over param, grad, m and v. The
    kernel updates param, m and v in place. ``decay`` is AdamW's shrink factor (1 for Adam),
    ``coupled`` Adam's L2 coefficient (0 for AdamW).
    """
    if xp not in _FUSED:

        def adam_step(param, grad, m, v, decay, coupled, beta1, beta2, step_size, bias2_root, eps):  # noqa: ANN001
            param *= decay
            g = grad + coupled * param
            m += (1 - beta1) * (g - m)
            v *= beta2
            v += (1 - beta2) * g * g
            param -= step_size * m / (xp.sqrt(v) / bias2_root + eps)

        _FUSED[xp] = xp.fuse(kernel_name="minideep_adam")(adam_step)
    return _FUSED[xp]


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov and Hutter, 2019), as PyTorch's ``AdamW``.

    The decay shrinks the weights directly instead of entering the gradient (and so the
    moment estimates):

    $$
    \theta \leftarrow \theta\,(1 - \eta\lambda) \quad \text{then the Adam step without } \lambda .
    $$

    Args:
        params, lr, betas, eps, amsgrad: as in `Adam`.
        weight_decay: $\lambda$ (default 1e-2).
    """

    decoupled_weight_decay = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)
