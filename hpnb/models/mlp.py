"""A plain ReLU multilayer perceptron (a baseline beside the LDLT networks); images are flattened."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..registry import checks
from . import MODELS


class MLP(nn.Sequential):
    """Flattens its input first, so images (B, C, H, W) work as well as tables (B, F)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flatten(1))


@MODELS.register("mlp")
@checks(depth=(lambda v: v >= 1, "an integer >= 1"), width=(lambda v: v >= 1, "an integer >= 1"))
def mlp(in_features: int = 28, num_classes: int = 2, depth: int = 2, width: int = 64) -> MLP:
    """``depth`` hidden Linear+ReLU layers of ``width`` units, then a linear classifier."""
    layers, d_in = [], in_features
    for _ in range(depth):
        layers += [nn.Linear(d_in, width), nn.ReLU()]
        d_in = width
    return MLP(*layers, nn.Linear(d_in, num_classes))
