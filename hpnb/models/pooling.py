"""Max pooling that keeps an ensemble's memory layout.

Under ``torch.func.vmap`` (``hpnb.stack``) a convolution becomes one grouped convolution whose output holds the
members beside the channels: (B, K·C, H, W), channels-last when the network is. torch's own batching rule for
max pooling moves the member axis in front of the batch instead, which copies every activation into
(K·B, C, H, W) and pools it in NCHW order, the slowest CPU kernel there is. The rule here folds the member axis
into the channels, so the pooling reads the convolution's output where it lies. Values and gradients (first and
second order) are exactly torch's: its own max-pooling kernels pick the same maxima. (``torch.compile`` keeps
the rule: a compiled vmap'd step calls it on every run.)
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .folding import fold, unfold


class _MaxPoolGrad(torch.autograd.Function):
    """The input gradient of a max pooling, with the same member-folding rule (for ``vmap(grad(…))``)."""

    @staticmethod
    def forward(grad, x, indices, size):
        return torch.ops.aten.max_pool2d_with_indices_backward(grad, x, [size, size], [size, size], [0, 0],
                                                               [1, 1], False, indices)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[2])

    @staticmethod
    def backward(ctx, grad_of_input_grad):
        # Linear in the output gradient: each window's gradient is what reached its maximum (double backward)
        indices, = ctx.saved_tensors
        picked = grad_of_input_grad.flatten(-2).gather(-1, indices.flatten(-2)).view_as(indices)
        return picked, None, None, None

    @staticmethod
    def vmap(info, in_dims, grad, x, indices, size):
        folded = [fold(t, d, info.batch_size) for t, d in zip((grad, x, indices), in_dims[:3])]
        out = _MaxPoolGrad.apply(folded[0][0], folded[1][0], folded[2][0], size)
        return unfold(out, folded[0][1]), 1


class _MaxPool(torch.autograd.Function):
    @staticmethod
    def forward(x, size):
        return torch.ops.aten.max_pool2d_with_indices(x, [size, size], [size, size])

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.size = inputs[1]
        ctx.save_for_backward(inputs[0], output[1])
        ctx.mark_non_differentiable(output[1])

    @staticmethod
    def backward(ctx, grad, _indices_grad):
        x, indices = ctx.saved_tensors
        return _MaxPoolGrad.apply(grad, x, indices, ctx.size), None

    @staticmethod
    def vmap(info, in_dims, x, size):
        folded, members_channels = fold(x, in_dims[0], info.batch_size)
        out, indices = _MaxPool.apply(folded, size)
        return (unfold(out, members_channels), unfold(indices, members_channels)), (1, 1)


def max_pool2d(x: torch.Tensor, size: int) -> torch.Tensor:
    """``F.max_pool2d(x, size)`` (stride = size, no padding) on (N, C, H, W) inputs."""
    if x.dim() != 4:
        raise ValueError(f"max_pool2d takes (N, C, H, W) inputs, got shape {tuple(x.shape)}")
    return _MaxPool.apply(x, size)[0]


class MaxPool2d(nn.Module):
    """``nn.MaxPool2d(size)`` through ``max_pool2d``."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return max_pool2d(x, self.size)

    def extra_repr(self) -> str:
        return f"size={self.size}"


__all__ = ["max_pool2d", "MaxPool2d"]
