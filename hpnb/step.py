"""One training step of every member of an ensemble, written so that it can be captured in a CUDA graph.

The step reads only tensors (the batch, the learning rates, the mask of members still training) and writes
only tensors it owns (the accumulated loss and accuracy, the per-step gradient norms), so the same code runs
eagerly on any device and is replayed from a graph on CUDA (``hpnb.graphs``).
"""
from __future__ import annotations

import contextlib
import os
from typing import Callable, Optional

import torch

from .optim import StackedOptimizer
from .stack import ModelStack


def autocast_for(device: torch.device, amp: bool, graph_safe: bool = False):
    """bf16 autocast on CUDA when asked (its weight cache must be off inside graph capture)."""
    if device.type == "cuda" and amp:
        return torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=not graph_safe)
    return contextlib.nullcontext()


def compiled(fn: Callable) -> Callable:
    """``torch.compile(fn)``, with inductor's on-disk cache kept apart per CPU kernel set unless the user chose a
    folder: its cache key leaves out ``ATEN_CPU_CAPABILITY``, and with torch 2.14.1 a step compiled under AVX2
    kernels aborted the process when loaded from that cache under AVX-512 ones."""
    try:  # torch's per-user default, e.g. /tmp/torchinductor_<user>, which importing torch._dynamo writes in
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir
        default = os.path.abspath(default_cache_dir())
    except ImportError:  # a private module: where it moved, fall back to torch's own choice
        default = None
    if default is not None and os.environ.get("TORCHINDUCTOR_CACHE_DIR", default) == default:
        kernels = torch.backends.cpu.get_cpu_capability().lower()
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = f"{default}_{kernels}"
    return torch.compile(fn)


class TrainStep:
    def __init__(self, stack: ModelStack, optimizer: StackedOptimizer, amp: bool, probe: Optional[str] = None,
                 compile: bool = False):
        self.stack, self.optimizer, self.amp, self.probe = stack, optimizer, amp, probe
        device, k = stack.device, stack.k
        self.loss_sum = torch.zeros(k, device=device)
        self.correct = torch.zeros(k, device=device, dtype=torch.long)
        self.index = torch.zeros((), device=device, dtype=torch.long)  # step within the epoch
        self.norms: Optional[torch.Tensor] = None
        self.losses = compiled(stack.losses) if compile else stack.losses
        self.graph_safe = False  # set while a graph is being captured

    def begin_epoch(self, steps: int) -> None:
        self.loss_sum.zero_()
        self.correct.zero_()
        self.index.zero_()
        if self.probe is not None and (self.norms is None or self.norms.shape[0] != steps):
            dtype = torch.promote_types(self.stack.params[self.probe].dtype, torch.float32)
            self.norms = torch.zeros(steps, self.stack.k, device=self.stack.device, dtype=dtype)

    def body(self, x, y, noise, lr, active) -> None:
        """Forward, backward and update; gradients are assumed cleared (eager) or graph-owned (replay)."""
        with autocast_for(self.stack.device, self.amp, self.graph_safe):
            loss, correct = self.losses(x, y, noise)
        loss.sum().backward()  # member k's slice of each gradient is its own loss's gradient
        if self.norms is not None:  # after backward, before the update
            grad = self.stack.params[self.probe].grad
            norm = torch.linalg.vector_norm(grad.detach().to(self.norms.dtype).flatten(1), dim=1)
            self.norms.index_copy_(0, self.index.view(1), norm[None])
        self.optimizer.step(lr, active)
        self.loss_sum.add_(loss.detach() * y.shape[1])
        self.correct.add_(correct)
        self.index.add_(1)

    def __call__(self, x, y, noise, lr, active) -> None:
        self.optimizer.zero_grad()
        self.body(x, y, noise, lr, active)


__all__ = ["TrainStep", "autocast_for"]
