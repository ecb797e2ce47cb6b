"""How well a training step uses the device: model FLOPs per sample, the device's measured matmul rate, and
the time spent producing batches.

Model FLOPs are the matrix-multiply and convolution FLOPs of one forward and backward pass, counted by
``torch.utils.flop_counter`` (elementwise work is not counted, as is usual for model-FLOPs utilisation).
The peak is measured, not taken from a data sheet: large bf16 matmuls on CUDA, fp32 on CPU.
"""
from __future__ import annotations

import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from .batches import TrainBatches


def training_flops(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """FLOPs of one forward + backward pass of ``model`` on the batch (x, y); gradients are left cleared."""
    was_training = model.training
    model.train()
    counter = FlopCounterMode(display=False)
    with counter:
        F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return counter.get_total_flops()


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(device: torch.device | str, size: int | None = None, repeats: int = 10) -> float:
    """Measured FLOP/s of square matmuls: bf16 on CUDA (what autocast runs), fp32 on CPU."""
    device = torch.device(device)
    cuda = device.type == "cuda"
    size = size or (8192 if cuda else 1024)
    dtype = torch.bfloat16 if cuda else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):  # warm-up: kernel selection, clocks
        a @ b
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def batch_seconds(batches: TrainBatches, generators: list[torch.Generator], device: torch.device) -> float:
    """Seconds to produce every batch of one epoch for the runs of ``generators`` (draw, gather, augment,
    normalise) with no model."""
    _synchronize(device)
    start = time.perf_counter()
    for _ in batches.batches(batches.draw(generators)):
        pass
    _synchronize(device)
    return time.perf_counter() - start


__all__ = ["training_flops", "matmul_rate", "batch_seconds"]
