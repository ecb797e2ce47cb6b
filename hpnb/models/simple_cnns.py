"""The two small CNNs of the learning-rate-decay study (chapter 3), with the originals' quirks as switches."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import UNIT_INTERVAL, checks
from . import MODELS
from .activations import elu
from .pooling import max_pool2d


class MnistCNN(nn.Module):
    """conv 3×3 → max-pool 2 → ReLU → linear 128 → ReLU → linear classes."""

    def __init__(self, num_classes: int, in_channels: int, image_size: int, double_softmax: bool):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 20, 3)
        side = (image_size - 2) // 2
        self.fc1 = nn.Linear(20 * side * side, 128)
        self.fc2 = nn.Linear(128, num_classes)
        self.double_softmax = double_softmax

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(max_pool2d(self.conv(x), 2))
        out = self.fc2(F.relu(self.fc1(out.flatten(1))))
        # The original returned probabilities and fed them to cross-entropy, which softmaxes again.
        return F.softmax(out, dim=1) if self.double_softmax else out


class CifarCNN(nn.Module):
    """Three conv 3×3 (16/32/64) → ELU → max-pool blocks; dropout; linear 500 → ELU → dropout → classes.

    Dropout masks are inputs (``noise``), drawn by the training loop from the run's own generator, so a run
    gets the same masks whether it trains alone or in an ensemble."""

    def __init__(self, num_classes: int, in_channels: int, image_size: int, dropout: float,
                 dropout_first_epoch_only: bool):
        super().__init__()
        self.convs = nn.ModuleList(
            [nn.Conv2d(c_in, c_out, 3, padding=1) for c_in, c_out in ((in_channels, 16), (16, 32), (32, 64))]
        )
        side = image_size // 8
        self.fc1 = nn.Linear(64 * side * side, 500)
        self.fc2 = nn.Linear(500, num_classes)
        self.p = dropout
        self.dropout_first_epoch_only = dropout_first_epoch_only
        self.epoch = 1

    def set_epoch(self, epoch: int) -> None:
        """Called by the training loop at the start of each epoch (1-based)."""
        self.epoch = epoch

    def dropping(self) -> bool:
        # The original never returned to train mode after its first validation pass, so its dropout
        # acted in epoch 1 only.
        return self.training and self.p > 0 and not (self.dropout_first_epoch_only and self.epoch > 1)

    def draw_noise(self, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The dropout keep masks (1 with probability 1 − p) of one training batch, from ``generator``."""
        if not self.dropping():
            return {}
        shapes = {"drop1": (batch, self.fc1.in_features), "drop2": (batch, self.fc1.out_features)}
        return {name: (torch.rand(shape, device=generator.device, generator=generator) >= self.p).float()
                for name, shape in shapes.items()}

    def forward(self, x: torch.Tensor, noise: dict | None = None) -> torch.Tensor:
        out = x
        for conv in self.convs:
            out = max_pool2d(elu(conv(out)), 2)
        out = out.flatten(1)
        drop = self.dropping()
        out = self._drop(out, noise, "drop1", drop)
        out = self._drop(elu(self.fc1(out)), noise, "drop2", drop)
        return self.fc2(out)

    def _drop(self, x: torch.Tensor, noise: dict | None, name: str, drop: bool) -> torch.Tensor:
        if not drop:
            return x
        if noise is None:  # called as a plain module (FLOP counting, other loops): torch's own dropout
            return F.dropout(x, self.p, True)
        return x * noise[name] / (1.0 - self.p)


@MODELS.register("mnist_cnn")
def mnist_cnn(num_classes: int = 10, in_channels: int = 1, image_size: int = 28, double_softmax: bool = False):
    """The chapter-3 MNIST network; ``double_softmax`` reproduces the original's softmax before the loss."""
    return MnistCNN(num_classes, in_channels, image_size, double_softmax)


@MODELS.register("cifar_cnn")
@checks(dropout=UNIT_INTERVAL)
def cifar_cnn(num_classes: int = 10, in_channels: int = 3, image_size: int = 32, dropout: float = 0.25,
              dropout_first_epoch_only: bool = False):
    """The chapter-3 CIFAR-10 network; ``dropout_first_epoch_only`` reproduces the original's eval-mode slip."""
    return CifarCNN(num_classes, in_channels, image_size, dropout, dropout_first_epoch_only)
