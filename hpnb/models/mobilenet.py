"""MobileNet v1 for 32×32 inputs (Howard et al. 2017), with a per-block activation switch."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import POSITIVE, checks
from . import MODELS
from .batchnorm import BatchNorm2d
from .vgg import scaled

# (out_channels, stride) of the 13 depthwise-separable blocks.
MOBILENET_CFG = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)


class Block(nn.Module):
    """Depthwise 3×3 conv (``conv1``) → BN → act → pointwise 1×1 conv (``conv2``) → BN → act."""

    def __init__(self, c_in: int, c_out: int, stride: int, sigmoid: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_in, 3, stride=stride, padding=1, groups=c_in, bias=False)
        self.bn1 = BatchNorm2d(c_in)
        self.conv2 = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn2 = BatchNorm2d(c_out)
        self.act = torch.sigmoid if sigmoid else F.relu
        self.sigmoid = sigmoid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        return self.act(self.bn2(self.conv2(out)))


class MobileNet(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, sigmoid_blocks, width: float):
        super().__init__()
        stem = scaled(32, width)
        self.conv1 = nn.Conv2d(in_channels, stem, 3, stride=1, padding=1, bias=False)
        self.bn1 = BatchNorm2d(stem)
        blocks, c_in = [], stem
        for i, (c_out, stride) in enumerate(MOBILENET_CFG):
            c_out = scaled(c_out, width)
            blocks.append(Block(c_in, c_out, stride, sigmoid=i in sigmoid_blocks))
            c_in = c_out
        self.layers = nn.Sequential(*blocks)
        self.linear = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        out = out.mean((2, 3))  # = the original's 2×2 average pool at 32×32 (a mean: see VGG.forward)
        return self.linear(out)


@MODELS.register("mobilenet")
@checks(
    width=POSITIVE,
    sigmoid_blocks=(lambda v: all(0 <= b < len(MOBILENET_CFG) for b in v), "block indices in 0..12"),
)
def mobilenet(
    num_classes: int = 100, in_channels: int = 3, sigmoid_blocks: tuple[int, ...] = (), width: float = 1.0
) -> MobileNet:
    """MobileNet v1; blocks listed in ``sigmoid_blocks`` use sigmoid instead of ReLU for both activations."""
    return MobileNet(num_classes, in_channels, frozenset(sigmoid_blocks), width)
