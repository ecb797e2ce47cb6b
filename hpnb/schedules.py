"""Learning-rate schedules (torch's own classes, by name), decay sequences and update strategies.

Schedules are stepped by the training loop once per epoch, or once per batch where ``per_batch`` says so.
Strategies (chapter 3) set the rate between epochs from the validation loss and a decay sequence.
"""
from __future__ import annotations

import math
from typing import Literal, Optional

import torch
from torch.optim import lr_scheduler

from .registry import NON_NEGATIVE, POSITIVE, UNIT_INTERVAL, ConfigError, Registry, checks

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


# --------------------------------------------------------------------------- decay sequences
SequenceName = Literal["seq1", "seq2", "seq3", "seq4", "seq4_printed"]


def sequence_factor(name: str, j: int) -> float:
    """The multiple of r0 set at the j-th update (j = 1, 2, …)."""
    if j < 1:
        raise ValueError(f"update index j must be >= 1, got {j}")
    if name == "seq1":
        return 1.0 / (j + 1)
    if name == "seq2":
        return 1.0 / math.sqrt(j + 1)
    if name == "seq3":
        return 0.9**j
    if name == "seq4":  # what the original runs used: the first update leaves the rate at r0
        return (1 - ((j - 1) % 10) / 10) / ((j - 1) // 10 + 1)
    if name == "seq4_printed":  # the formula as printed in the write-up; differs at multiples of 10
        return (1 - ((j - 1) % 10) / 10) / (j // 10 + 1)
    raise ConfigError(f"unknown decay sequence {name!r}; allowed: seq1, seq2, seq3, seq4, seq4_printed")


def decay_sequence(name: str, r0: float, n: int) -> list[float]:
    """The first ``n`` learning rates set by successive updates of sequence ``name``."""
    return [r0 * sequence_factor(name, j) for j in range(1, n + 1)]


# --------------------------------------------------------------------------- update strategies
STRATEGIES = Registry("strategy")


class Strategy:
    """Sets the rate between epochs. ``after_epoch`` returns the rate for the next epoch, or None."""

    def __init__(self, sequence: SequenceName = "seq1"):
        self.sequence = sequence
        self.updates = 0  # j: how many times the rate has been changed
        self.losses: list[float] = []
        self.r0 = None

    def bind(self, r0: float) -> None:
        self.r0 = r0

    def fires(self) -> bool:
        raise NotImplementedError

    def after_epoch(self, val_loss: float) -> Optional[float]:
        self.losses.append(float(val_loss))
        if not self.fires():
            return None
        self.updates += 1
        return self.r0 * sequence_factor(self.sequence, self.updates)

    def state_dict(self) -> dict:
        return {k: v for k, v in vars(self).items()}

    def load_state_dict(self, state: dict) -> None:
        vars(self).update(state)


@STRATEGIES.register("none")
class NoStrategy(Strategy):
    """The schedule alone sets the rate."""

    def __init__(self):
        super().__init__("seq1")

    def fires(self) -> bool:
        return False


@STRATEGIES.register("epoch")
class ByEpoch(Strategy):
    """One update after every epoch."""

    def fires(self) -> bool:
        return True


@STRATEGIES.register("cutoff")
@checks(cutoff_fraction=POSITIVE, cutoff_decay=UNIT_INTERVAL)
class ByCutoff(Strategy):
    """Update when |v_t − v_{t−1}| < c; c starts at v_1·fraction and shrinks by ``cutoff_decay`` per update."""

    def __init__(self, sequence: SequenceName = "seq1", cutoff_fraction: float = 0.01, cutoff_decay: float = 0.2):
        super().__init__(sequence)
        self.cutoff_fraction = cutoff_fraction
        self.cutoff_decay = cutoff_decay
        self.cutoff = None

    def fires(self) -> bool:
        if len(self.losses) == 1:
            self.cutoff = self.losses[0] * self.cutoff_fraction
            return False
        if abs(self.losses[-1] - self.losses[-2]) < self.cutoff:
            self.cutoff *= self.cutoff_decay
            return True
        return False


@STRATEGIES.register("oscillation")
class ByOscillation(Strategy):
    """Update when the validation loss rose (v_t > v_{t−1})."""

    def __init__(self, sequence: SequenceName = "seq1", zero_padded_history: bool = False):
        super().__init__(sequence)
        # The original compared against a zero-padded history, so it always fired after epoch 1.
        self.zero_padded_history = zero_padded_history

    def fires(self) -> bool:
        if len(self.losses) == 1:
            return self.zero_padded_history and self.losses[0] > 0.0
        return self.losses[-1] > self.losses[-2]


def build_strategy(name: str, options: dict, r0: float) -> Strategy:
    strategy = STRATEGIES.build(name, options)
    strategy.bind(r0)
    return strategy


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
