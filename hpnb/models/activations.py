"""ELU computed from ``exp`` on CPUs where torch runs its AVX-512 kernels.

torch's CPU ELU evaluates ``expm1`` on every element, and its AVX-512 ``expm1`` can be slow: on a 2-core AMD
EPYC VM (torch 2.14.1), on the chapter-3 CIFAR network's first activation in its quick-profile ensemble of 26
(20 images, 26 × 16 channels at 16×16: 2.1 M elements), ``F.elu`` took 11-12 ms forward with the AVX-512
kernels and 2.4-2.6 ms with the AVX2 ones. For α = 1, ELU(x) = max(x, exp(min(x, 0)) − 1), because eˣ − 1 ≥ x
everywhere: four cheap passes, 2.7-3.5 ms. With the AVX-512 kernels that made the network's ensembles of 26
train 1.26-1.47x and evaluate 1.8-2.5x faster per step (ensembles of 2: 1.02-1.36x and 1.6-2.7x); with the
AVX2 kernels they moved within the noise (0.85-1.25x), so there torch's ELU stays (scripts/bench_cpu_ops.py
--ops elu, side by side, over two runs each). The price is ``exp(x) − 1`` in place of ``expm1(x)`` near 0: an
absolute error of at most half a unit at 1 (6e-8 in float32), and a rounded value below x is replaced by x
itself. The backward is torch's own ``elu_backward`` from the output (eˣ = ELU(x) + 1 below 0), as for torch's
in-place ELU. Off the CPU (CUDA, where one fused kernel is fastest) ``elu`` is ``F.elu``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# torch fixes its CPU kernel set once per process ($ATEN_CPU_CAPABILITY can lower it)
FROM_EXP_ON_CPU = torch.backends.cpu.get_cpu_capability() == "AVX512"


class _ELU(torch.autograd.Function):
    @staticmethod
    def forward(x):
        if torch.compiler.is_compiling():  # traced (where vmap runs this on batched tensors): no in-place ops
            return torch.maximum(x, x.clamp(max=0).exp() - 1)
        below = x.clamp(max=0).exp_().sub_(1)
        return torch.maximum(x, below, out=below)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad):
        out, = ctx.saved_tensors
        return torch.ops.aten.elu_backward(grad, 1.0, 1, 1, True, out)

    @staticmethod
    def vmap(info, in_dims, x):
        # Elementwise: the batched tensor as it lies in memory, whatever its member axis
        return _ELU.apply(x), in_dims[0]


def elu_from_exp(x: torch.Tensor) -> torch.Tensor:
    """ELU (α = 1) as max(x, exp(min(x, 0)) − 1), with torch's gradient from the output."""
    return _ELU.apply(x)


def elu(x: torch.Tensor) -> torch.Tensor:
    """``F.elu(x)`` (α = 1): from ``exp`` for float32 and float64 on a CPU with torch's AVX-512 kernels (in half
    precision exp − 1 would lose too much near 0), torch's kernel elsewhere."""
    if FROM_EXP_ON_CPU and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        return elu_from_exp(x)
    return F.elu(x)


__all__ = ["elu", "elu_from_exp", "FROM_EXP_ON_CPU"]
