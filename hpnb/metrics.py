"""The decay-sequence study's metrics (chapter 3), exactly as the original code defined them."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def convergence_epoch(val_acc: Sequence[float], window: int = 4, threshold: float = 0.009) -> int:
    """First 0-based index i where the ``window`` consecutive |Δ accuracy| between epochs i+1 … i+window+1
    sum to less than ``threshold``; the number of epochs if that never happens."""
    acc = np.asarray(val_acc, dtype=float)
    steps = np.abs(np.diff(acc))
    for i in range(len(steps) - window + 1):
        if steps[i:i + window].sum() < threshold:
            return i
    return len(acc)


def cifar_accuracy(val_acc: Sequence[float]) -> float:
    """CIFAR-10: the last epoch's validation accuracy."""
    return float(val_acc[-1])


def mnist_accuracy(val_acc: Sequence[float]) -> float:
    """MNIST: the mean validation accuracy of the last five epochs but the final one (46th–49th of 50)."""
    acc = np.asarray(val_acc, dtype=float)
    if len(acc) < 5:
        raise ValueError(f"the MNIST accuracy needs at least 5 epochs, got {len(acc)}")
    return float(acc[-5:-1].mean())
