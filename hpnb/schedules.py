"""Learning-rate schedules: torch's own scheduler classes, by name, with validated options.

Schedules are stepped by the training loop once per epoch, or once per batch for those in ``PER_BATCH``.
(Update strategies, which set the rate from the validation loss, are in ``hpnb.strategies``.)
"""
from __future__ import annotations

from typing import Literal, Optional

import torch
from torch.optim import lr_scheduler

from .registry import NON_NEGATIVE, POSITIVE, Registry, checks

SCHEDULES = Registry("schedule", context=("epochs", "steps_per_epoch"))
PER_BATCH = {"cyclic"}  # schedules stepped after every batch rather than every epoch


@SCHEDULES.register("constant")
def constant(optimizer):
    """A truly constant rate (ConstantLR's defaults would divide it by 3 for 5 steps)."""
    return lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


@SCHEDULES.register("exponential")
@checks(gamma=POSITIVE)
def exponential(optimizer, gamma: float = 0.95):
    return lr_scheduler.ExponentialLR(optimizer, gamma=gamma)


@SCHEDULES.register("multistep")
@checks(gamma=POSITIVE, milestones=(lambda m: all(x >= 1 for x in m) and list(m) == sorted(m), "increasing epochs >= 1"))
def multistep(optimizer, milestones: tuple[int, ...] = (30, 60, 90), gamma: float = 0.1):
    return lr_scheduler.MultiStepLR(optimizer, milestones=list(milestones), gamma=gamma)


@SCHEDULES.register("cyclic")
@checks(base_lr=POSITIVE, max_lr=POSITIVE, step_size_up_epochs=POSITIVE)
def cyclic(optimizer, steps_per_epoch: int = 1, base_lr: float = 1e-4, max_lr: float = 1e-3,
           step_size_up_epochs: float = 2.0, mode: Literal["triangular", "triangular2", "exp_range"] = "triangular"):
    """CyclicLR stepped per batch; the half-cycle is given in epochs. Momentum is not cycled (Adam has none)."""
    step_size_up = max(1, round(step_size_up_epochs * steps_per_epoch))
    return lr_scheduler.CyclicLR(optimizer, base_lr=base_lr, max_lr=max_lr, step_size_up=step_size_up,
                                 mode=mode, cycle_momentum=False)


@SCHEDULES.register("cosine")
@checks(T_max=POSITIVE, eta_min=NON_NEGATIVE)
def cosine(optimizer, epochs: int = 1, T_max: Optional[int] = None, eta_min: float = 0.0):
    """Cosine annealing to ``eta_min`` over ``T_max`` epochs (default: the whole run)."""
    return lr_scheduler.CosineAnnealingLR(optimizer, T_max=T_max or epochs, eta_min=eta_min)


@SCHEDULES.register("cosine_warm_restarts")
@checks(T_0=POSITIVE, T_mult=POSITIVE, eta_min=NON_NEGATIVE)
def cosine_warm_restarts(optimizer, T_0: int = 10, T_mult: int = 2, eta_min: float = 0.0):
    return lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=T_0, T_mult=T_mult, eta_min=eta_min)


def build_schedule(optimizer, name: str, options: dict, epochs: int, steps_per_epoch: int):
    return SCHEDULES.build(name, options, optimizer, epochs=epochs, steps_per_epoch=steps_per_epoch)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
