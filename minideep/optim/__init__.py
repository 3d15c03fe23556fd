"""Optimizers and learning-rate schedules, with PyTorch's update rules and names.

    from minideep import optim
    opt = optim.Adam(model.named_parameters(), lr=1e-3)
    sched = optim.CosineAnnealingLR(opt, T_max=100, eta_min=2e-5)

State (momentum buffers, moment estimates, step counts) is keyed by parameter name, so
``state_dict()``/``load_state_dict()`` continue a run exactly.
"""
from .adam import Adam, AdamW
from .by_name import make_optimizer, make_schedule
from .lr_scheduler import CosineAnnealingLR, ExponentialLR, LRScheduler, StepLR
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "CosineAnnealingLR", "ExponentialLR", "LRScheduler", "Optimizer", "StepLR", "make_optimizer",
           "make_schedule"]
