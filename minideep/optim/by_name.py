"""An optimizer or a learning-rate schedule by its name, as the chapters' presets give them."""
from __future__ import annotations

from typing import Any

from .adam import Adam, AdamW
from .lr_scheduler import CosineAnnealingLR, ExponentialLR, StepLR
from .sgd import SGD


def make_optimizer(name: str, params: Any, lr: float, weight_decay: float = 0.0, momentum: float = 0.9):
    """``"adam"``, ``"adamw"``, ``"sgd"`` (with momentum) or ``"nesterov"`` (SGD, Nesterov momentum), named parameters."""
    if name == "adam":
        return Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "nesterov":
        return SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=True)
    raise ValueError(f"make_optimizer: unknown optimizer {name!r}; choose adam, adamw, sgd or nesterov")


def make_schedule(name: str | None, optimizer: Any, epochs: int, eta_min: float = 0.0, gamma: float | None = None):
    """``"cosine"`` (T_max = epochs, as the coursework), ``"step"`` (x0.1 every third of the run),
    ``"exponential"`` (x ``gamma`` every epoch, as Srivastava et al.) or None."""
    if name is None or name == "none":
        return None
    if name == "exponential":
        if gamma is None or not 0 < gamma <= 1:
            raise ValueError(f"make_schedule: 'exponential' needs a decay factor gamma in (0, 1], got {gamma!r}")
        return ExponentialLR(optimizer, gamma)
    if name == "cosine":
        return CosineAnnealingLR(optimizer, T_max=epochs, eta_min=eta_min)
    if name == "step":
        return StepLR(optimizer, step_size=max(epochs // 3, 1), gamma=0.1)
    raise ValueError(f"make_schedule: unknown schedule {name!r}; choose cosine, step, exponential or none")
