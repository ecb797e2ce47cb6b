"""Batches on the device, for one run or for an ensemble of runs trained together.

Every run draws its own randomness for an epoch up front, from its own generator: the shuffled order, the
crop offsets and the flips of every sample. A run therefore sees exactly the same batches whether it trains
alone or as a member of an ensemble, and producing a batch is a few gathers with no per-image Python.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import torch
import torch.nn.functional as F

from .data import TensorSet


def normalise(x: torch.Tensor, mean: Optional[torch.Tensor], std: Optional[torch.Tensor]) -> torch.Tensor:
    """uint8 images → floats (of the default dtype), scaled to [0, 1] and standardised per channel; tabular
    features pass through."""
    if x.dtype != torch.uint8:
        return x
    shape = (1,) * (x.dim() - 3) + (-1, 1, 1)
    return (x.to(torch.get_default_dtype()).div_(255) - mean.view(shape)) / std.view(shape)


def random_crop(x: torch.Tensor, padding: int, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Pad each image of (N, C, H, W) with zeros and cut the window at offsets (dy, dx), in one gather."""
    if padding == 0:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    return padded[torch.arange(n, device=x.device)[:, None, None, None],
                  torch.arange(c, device=x.device)[None, :, None, None], rows, cols]


def random_flip(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    return torch.where(flip[:, None, None, None], x.flip(3), x)


@dataclass
class EpochDraws:
    """One run's randomness for one epoch: sample order, and per position in that order the crop and flip."""

    order: torch.Tensor  # (N,) long
    dy: Optional[torch.Tensor] = None  # (N,) crop offsets, 0 … 2·padding
    dx: Optional[torch.Tensor] = None
    flip: Optional[torch.Tensor] = None  # (N,) bool

    @classmethod
    def draw(cls, n: int, generator: torch.Generator, crop_padding: int, flip: bool) -> "EpochDraws":
        device = generator.device
        order = torch.randperm(n, device=device, generator=generator)
        dy = dx = flips = None
        if crop_padding:
            dy = torch.randint(0, 2 * crop_padding + 1, (n,), device=device, generator=generator)
            dx = torch.randint(0, 2 * crop_padding + 1, (n,), device=device, generator=generator)
        if flip:
            flips = torch.rand(n, device=device, generator=generator) < 0.5
        return cls(order, dy, dx, flips)


def stack_draws(draws: Sequence[EpochDraws]) -> EpochDraws:
    """The draws of K runs as (K, N) tensors."""
    first = draws[0]
    pick = lambda name: None if getattr(first, name) is None else torch.stack([getattr(d, name) for d in draws])  # noqa: E731
    return EpochDraws(pick("order"), pick("dy"), pick("dx"), pick("flip"))


class TrainBatches:
    """The training batches of one epoch for K runs: ``x`` of shape (K, B, …) and ``y`` of shape (K, B).

    Each run's order, crops and flips come from its own generator (one per run, in ``generators``)."""

    def __init__(self, data: TensorSet, batch_size: int, mean=None, std=None, crop_padding: int = 0,
                 flip: bool = False, drop_last: bool = False, channels_last: bool = False):
        self.data, self.batch_size, self.drop_last = data, batch_size, drop_last
        self.crop_padding, self.flip, self.channels_last = crop_padding, flip, channels_last
        self.mean, self.std = mean, std

    def __len__(self) -> int:
        n = len(self.data)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def seen(self) -> int:
        """Samples per run per epoch."""
        return len(self) * self.batch_size if self.drop_last else len(self.data)

    def draw(self, generators: Sequence[torch.Generator]) -> EpochDraws:
        """Every run's randomness for the next epoch (advances each generator)."""
        return stack_draws([EpochDraws.draw(len(self.data), g, self.crop_padding, self.flip) for g in generators])

    def batches(self, draws: EpochDraws) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        k = draws.order.shape[0]
        for b in range(len(self)):
            window = slice(b * self.batch_size, (b + 1) * self.batch_size)
            index = draws.order[:, window]  # (K, B)
            x, y = self.data.x[index], self.data.y[index]
            if x.dim() == 5:  # images: augment all K·B at once
                flat = x.flatten(0, 1)
                if self.crop_padding:
                    flat = random_crop(flat, self.crop_padding, draws.dy[:, window].flatten(), draws.dx[:, window].flatten())
                if self.flip:
                    flat = random_flip(flat, draws.flip[:, window].flatten())
                x = normalise(flat, self.mean, self.std).view(k, -1, *flat.shape[1:])
                if self.channels_last:
                    x = members_beside_channels(x)
            yield x, y


def members_beside_channels(x: torch.Tensor) -> torch.Tensor:
    """Stacked images (K, B, C, H, W) laid out as (B, H, W, K, C) in memory. vmap turns an ensemble's
    convolution into one grouped convolution over (B, K·C, H, W); in this layout that input is a channels-last
    view of the batch rather than a copy, and each member's (B, C, H, W) batch keeps its channels innermost."""
    return x.permute(1, 3, 4, 0, 2).contiguous().permute(3, 0, 4, 1, 2)


def member_eval_batch(eval_batch_size: int, members: int) -> int:
    """Samples per evaluation batch when ``members`` networks evaluate each one: ``eval_batch_size`` counts the
    samples of one pass over all members, so an ensemble's activations stay the size of a solo run's (on a
    2-core CPU, 12 VGG-19s evaluating 1,024 samples each ran 2-4x slower per sample than 85 each)."""
    return max(1, -(-eval_batch_size // members))


class EvalBatches:
    """A split in order, normalised, in batches of ``batch_size`` (the same batches for every run)."""

    def __init__(self, data: TensorSet, batch_size: int, mean=None, std=None, channels_last: bool = False):
        self.data, self.batch_size, self.channels_last = data, batch_size, channels_last
        self.mean, self.std = mean, std

    def __len__(self) -> int:
        return -(-len(self.data) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for b in range(len(self)):
            window = slice(b * self.batch_size, (b + 1) * self.batch_size)
            x = normalise(self.data.x[window], self.mean, self.std)
            if self.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.data.y[window]

    def first(self, n: int) -> torch.Tensor:
        """The first ``n`` samples, normalised (a fixed probe batch)."""
        return normalise(self.data.x[:n], self.mean, self.std)


__all__ = ["TrainBatches", "EvalBatches", "member_eval_batch", "members_beside_channels", "EpochDraws", "normalise",
           "random_crop", "random_flip"]
