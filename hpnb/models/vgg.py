"""VGG-19 for 32×32 inputs (Simonyan & Zisserman 2015; CIFAR layout as in kuangliu/pytorch-cifar)."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..registry import POSITIVE, checks
from . import MODELS
from .batchnorm import BatchNorm2d
from .pooling import MaxPool2d

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
                layers.append(MaxPool2d(2))
                continue
            c_out = scaled(item, width)
            layers.append(nn.Conv2d(c_in, c_out, 3, padding=1))
            if batch_norm:
                layers.append(BatchNorm2d(c_out))
            # Not in place: under vmap an in-place ReLU's backward copies the activations member-first and
            # mixes memory layouts, several times slower on a CPU.
            layers.append(nn.ReLU())
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Global average: the identity at 32×32, where five pools leave 1×1. A mean rather than adaptive pooling,
        # which on channels-last maps uses as_strided_, an op vmap runs one member at a time.
        return self.classifier(self.features(x).mean((2, 3)))


@MODELS.register("vgg19")
@checks(width=POSITIVE)
def vgg19(num_classes: int = 10, in_channels: int = 3, batch_norm: bool = False, width: float = 1.0) -> VGG:
    """VGG-19: sixteen 3×3 convs and one linear classifier; ``width`` scales every channel count."""
    return VGG(VGG19_CFG, num_classes, in_channels, batch_norm, width)
