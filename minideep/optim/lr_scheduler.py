"""Learning-rate schedules: StepLR, ExponentialLR, CosineAnnealingLR, stepped once per epoch.

They follow PyTorch to the last bit: ``scheduler.step()`` updates the rate *recursively*
from the optimizer's current ``lr`` (PyTorch's ``get_lr``), and ``scheduler.step(epoch)``
sets it from the closed form (PyTorch's ``_get_closed_form_lr``). For the cosine schedule
the two agree only up to rounding, so a run that wants PyTorch's numbers must step the
same way PyTorch's run did. Use::

    scheduler = CosineAnnealingLR(opt, T_max=epochs, eta_min=2e-5)
    for epoch in range(epochs):
        train_one_epoch(...)      # uses opt.lr
        scheduler.step()          # after the epoch's optimizer steps

The MLP coursework (2019-2022 code) instead called ``scheduler.step(epoch=e)`` before every
iteration of epoch ``e``, which gives the closed-form rate of epoch ``e`` throughout it.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

from .optimizer import Optimizer


class LRScheduler:
    """Base class: owns ``last_epoch`` and sets ``optimizer.lr`` on every ``step()``.

    Creating a schedule does not change the rate: ``last_epoch`` becomes 0 and the rate
    of epoch 0 is the optimizer's ``lr``, remembered as ``base_lrs[0]``.

    Attributes:
        optimizer: the optimizer whose ``lr`` this schedule sets.
        last_epoch: the index of the epoch whose rate is in ``optimizer.lr``.
        base_lrs: ``[initial lr]`` (a list, as in PyTorch, with one group).
    """

    #: the schedule's own settings, saved by ``state_dict``.
    settings: tuple[str, ...] = ()

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected a minideep optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lrs = [optimizer.lr]
        self.last_epoch = 0
        self._last_lr = [optimizer.lr]

    def get_last_lr(self) -> list[float]:
        """The rate the last ``step()`` set (one entry: minideep optimizers have one group)."""
        return list(self._last_lr)

    def step(self, epoch: int | None = None) -> None:
        """Move to the next epoch's rate; with ``epoch``, jump to that epoch's closed-form rate."""
        if epoch is None:
            self.last_epoch += 1
            lr = self.recursive_lr(self.optimizer.lr)
        else:
            if int(epoch) != epoch or epoch < 0:
                raise ValueError(f"{type(self).__name__}.step: epoch must be a non-negative integer, got {epoch}")
            self.last_epoch = int(epoch)
            lr = self.closed_form_lr()
        self.optimizer.lr = lr
        self._last_lr = [lr]

    def recursive_lr(self, lr: float) -> float:
        """Epoch ``last_epoch``'s rate from the previous epoch's rate ``lr``."""
        raise NotImplementedError

    def closed_form_lr(self) -> float:
        """Epoch ``last_epoch``'s rate from ``base_lrs[0]`` alone."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Settings, ``last_epoch``, ``base_lrs`` and the last rate (plain Python numbers)."""
        return {
            "type": type(self).__name__,
            "settings": {key: getattr(self, key) for key in self.settings},
            "last_epoch": self.last_epoch,
            "base_lrs": list(self.base_lrs),
            "last_lr": list(self._last_lr),
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore ``state_dict()``'s output and put the saved rate back into ``optimizer.lr``."""
        owner = f"{type(self).__name__}.load_state_dict"
        if state_dict.get("type") != type(self).__name__:
            raise ValueError(f"{owner}: the state was saved by {state_dict.get('type')!r}, not {type(self).__name__!r}")
        for key, value in state_dict["settings"].items():
            if key not in self.settings:
                raise ValueError(f"{owner}: unknown setting {key!r}")
            setattr(self, key, type(getattr(self, key))(value))
        self.last_epoch = int(state_dict["last_epoch"])
        self.base_lrs = [float(v) for v in state_dict["base_lrs"]]
        self._last_lr = [float(v) for v in state_dict["last_lr"]]
        self.optimizer.lr = self._last_lr[0]

    def __repr__(self) -> str:
        settings = ", ".join(f"{key}={getattr(self, key)!r}" for key in self.settings)
        return f"{type(self).__name__}({settings}, last_epoch={self.last_epoch}, lr={self._last_lr[0]!r})"


class StepLR(LRScheduler):
    r"""Multiply the rate by ``gamma`` every ``step_size`` epochs.

    $$
    \eta_e = \eta_0\, \gamma^{\lfloor e / \text{step\_size} \rfloor}
    $$

    Args:
        optimizer: the optimizer whose ``lr`` is scheduled.
        step_size: epochs between decays (a positive integer).
        gamma: the decay factor (default 0.1).

    Example:
        >>> sched = StepLR(opt, step_size=30, gamma=0.1)   # 0.05 for epochs 0-29, 0.005 for 30-59, ...
    """

    settings = ("step_size", "gamma")

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        if int(step_size) != step_size or step_size < 1:
            raise ValueError(f"StepLR: step_size must be a positive integer, got {step_size}")
        self.step_size, self.gamma = int(step_size), float(gamma)
        super().__init__(optimizer)

    def recursive_lr(self, lr: float) -> float:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return lr
        return lr * self.gamma

    def closed_form_lr(self) -> float:
        return self.base_lrs[0] * self.gamma ** (self.last_epoch // self.step_size)


class ExponentialLR(LRScheduler):
    r"""Multiply the rate by ``gamma`` every epoch.

    $$
    \eta_e = \eta_0\, \gamma^{e}
    $$

    Args:
        optimizer: the optimizer whose ``lr`` is scheduled.
        gamma: the decay factor per epoch.
    """

    settings = ("gamma",)

    def __init__(self, optimizer: Optimizer, gamma: float) -> None:
        self.gamma = float(gamma)
        super().__init__(optimizer)

    def recursive_lr(self, lr: float) -> float:
        return lr * self.gamma

    def closed_form_lr(self) -> float:
        return self.base_lrs[0] * self.gamma**self.last_epoch


class CosineAnnealingLR(LRScheduler):
    r"""Cosine annealing from the initial rate $\eta_0$ down to ``eta_min`` over ``T_max`` epochs.

    Closed form (``step(epoch)``; SGDR without restarts):

    $$
    \eta_e = \eta_{\min} + \tfrac12 (\eta_0 - \eta_{\min})\left(1 + \cos\frac{\pi e}{T_{\max}}\right)
    $$

    ``step()`` uses PyTorch's recursion instead, from the current rate $\eta_{e-1}$:

    $$
    \eta_e = \eta_{\min} + (\eta_{e-1} - \eta_{\min})\,
             \frac{1 + \cos(\pi e / T_{\max})}{1 + \cos(\pi (e - 1) / T_{\max})}
    $$

    except when $e - 1 - T_{\max}$ is a multiple of $2T_{\max}$ (where the denominator is
    0): then $\eta_e = \eta_{e-1} + \tfrac12(\eta_0 - \eta_{\min})(1 - \cos(\pi/T_{\max}))$.
    Past ``T_max`` the rate climbs back up along the cosine. The recursion also follows a
    rate changed by hand between steps, as PyTorch's does.

    Args:
        optimizer: the optimizer whose ``lr`` is scheduled.
        T_max: the half period, in epochs (usually the number of epochs).
        eta_min: the lowest rate (default 0).

    Example:
        >>> sched = CosineAnnealingLR(opt, T_max=100, eta_min=2e-5)   # the coursework's schedule
    """

    settings = ("T_max", "eta_min")

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        if not T_max > 0:
            raise ValueError(f"CosineAnnealingLR: T_max must be positive, got {T_max}")
        self.T_max, self.eta_min = T_max, float(eta_min)
        super().__init__(optimizer)

    def recursive_lr(self, lr: float) -> float:
        # Each expression below is PyTorch's, operation for operation, so the floats agree bit for bit.
        e, base = self.last_epoch, self.base_lrs[0]
        if (e - 1 - self.T_max) % (2 * self.T_max) == 0:
            return lr + (base - self.eta_min) * (1 - math.cos(math.pi / self.T_max)) / 2
        return (
            (1 + math.cos(math.pi * e / self.T_max))
            / (1 + math.cos(math.pi * (e - 1) / self.T_max))
            * (lr - self.eta_min)
            + self.eta_min
        )

    def closed_form_lr(self) -> float:
        base = self.base_lrs[0]
        return self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
