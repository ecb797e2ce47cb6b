"""Decay sequences and update strategies (chapter 3): between epochs, a strategy decides from the validation
loss whether to move the learning rate to the next value of a decay sequence.

Epoch 1 always runs at r0; the j-th update sets r0 · factor(j). A strategy is a registered component, so a run
config can name it (``strategy: {name: cutoff, sequence: seq2}``) and its options are validated like any other.
"""
from __future__ import annotations

import math
from typing import Literal, Optional

from .registry import POSITIVE, UNIT_INTERVAL, ConfigError, Registry, checks


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


__all__ = ["STRATEGIES", "Strategy", "build_strategy", "decay_sequence", "sequence_factor"]
