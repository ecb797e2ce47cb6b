"""VGG-19 for 32×32 inputs (Simonyan & Zisserman 2015; CIFAR layout as in kuangliu/pytorch-cifar)."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..registry import POSITIVE, checks
from . import MODELS

VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


def scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


class VGG(nn.Module):
    def __init__(self, cfg, num_classes: int, in_channels: int, batch_norm: bool, width: float):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for item in cfg:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            c_out = scaled(item, width)
            layers.append(nn.Conv2d(c_in, c_out, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.ReLU(inplace=True))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)  # identity at 32×32 (the map is 1×1 after five pools)
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@MODELS.register("vgg19")
@checks(width=POSITIVE)
def vgg19(num_classes: int = 10, in_channels: int = 3, batch_norm: bool = False, width: float = 1.0) -> VGG:
    """VGG-19: sixteen 3×3 convs and one linear classifier; ``width`` scales every channel count."""
    return VGG(VGG19_CFG, num_classes, in_channels, batch_norm, width)
