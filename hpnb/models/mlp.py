"""A plain ReLU multilayer perceptron for tabular data (a baseline beside the LDLT networks)."""
from __future__ import annotations

import torch.nn as nn

from ..registry import checks
from . import MODELS


@MODELS.register("mlp")
@checks(depth=(lambda v: v >= 1, "an integer >= 1"), width=(lambda v: v >= 1, "an integer >= 1"))
def mlp(in_features: int = 28, num_classes: int = 2, depth: int = 2, width: int = 64) -> nn.Sequential:
    """``depth`` hidden Linear+ReLU layers of ``width`` units, then a linear classifier."""
    layers, d_in = [], in_features
    for _ in range(depth):
        layers += [nn.Linear(d_in, width), nn.ReLU()]
        d_in = width
    return nn.Sequential(*layers, nn.Linear(d_in, num_classes))
