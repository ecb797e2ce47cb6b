"""Batch norm that normalises an ensemble's members in one native kernel on a CPU.

torch's vmap rule for batch norm runs the kernel without the affine part and then scales and shifts each member
with separate strided multiplications and additions (and their backward): several passes over every activation.
The rule here folds the member axis into the channels (``hpnb.models.folding``): one call of torch's own
``native_batch_norm`` normalises, scales and shifts every member and updates each member's running statistics
in place; its backward is ``native_batch_norm_backward`` on the same folded tensors (under ``vmap(grad(…))``
torch's rule for that op runs it instead). On VGG-19-BN's first activation in its quick-profile ensemble of 12
that ran forward 1.9x and backward 3.5-4.3x faster.

The rule is Python: under vmap each call costs about 0.3 ms more than torch's rule, which outweighed the gain on
the small activations of MobileNet and ResNet-34 (per ensemble step 0.84-1.00x, evaluation 0.66-0.91x, folding
every layer; VGG-19-BN 1.16x and 0.97x). So only activations of at least ``FOLD_FROM`` elements per member
fold: VGG-19-BN's ensemble step then ran 1.26x and its evaluation 1.18x faster; MobileNet folds one layer of
its training step, ResNet-34 (batch 32) none (scripts/bench_cpu_ops.py, quick profile, 2-core EPYC VM). One
network (no vmap) runs exactly the kernels ``F.batch_norm`` runs on a CPU. On CUDA, where the fold has not been
measured, torch's rule stays, on torch's native kernel rather than cuDNN's for ensembles (``batch_norm``).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .folding import fold, fold_per_channel, unfold

FOLD_FROM = 1 << 17  # elements per member (e.g. 64 images of 8 channels at 16×16); below, torch's rule


class _BatchNorm(torch.autograd.Function):
    @staticmethod
    def forward(x, weight, bias, running_mean, running_var, training, momentum, eps):
        return torch.ops.aten.native_batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, _bias, running_mean, running_var, training, _momentum, eps = inputs
        # In training the backward uses the batch statistics only; the running ones change at every step
        stats = (None, None) if training else (running_mean, running_var)
        ctx.save_for_backward(x, weight, *stats, output[1], output[2])
        ctx.training, ctx.eps = training, eps
        ctx.mark_non_differentiable(output[1], output[2])

    @staticmethod
    def backward(ctx, grad, _mean_grad, _invstd_grad):
        # torch's own backward op, differentiable again (so Hessian-vector products pass through)
        x, weight, running_mean, running_var, save_mean, save_invstd = ctx.saved_tensors
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]]
        grads = torch.ops.aten.native_batch_norm_backward(grad, x, weight, running_mean, running_var, save_mean,
                                                          save_invstd, ctx.training, ctx.eps, mask)
        return (*grads, None, None, None, None, None)

    @staticmethod
    def vmap(info, in_dims, x, weight, bias, running_mean, running_var, training, momentum, eps):
        members = info.batch_size
        for name, t, d in (("mean", running_mean, in_dims[3]), ("variance", running_var, in_dims[4])):
            if training and t is not None and d is None:
                raise ValueError(f"batch_norm under vmap: the members share one running {name}; "
                                 "stack a buffer per member")
        folded, members_channels = fold(x, in_dims[0], members)
        weight, bias = (fold_per_channel(t, d, members) for t, d in zip((weight, bias), in_dims[1:3]))
        stats = [fold_per_channel(t, d, members) for t, d in zip((running_mean, running_var), in_dims[3:5])]
        out, save_mean, save_invstd = _BatchNorm.apply(folded, weight, bias, *stats, training, momentum, eps)
        if training:  # where the fold had to copy a statistic, the update must be written back (else: a no-op)
            for stacked, flat, d in zip((running_mean, running_var), stats, in_dims[3:5]):
                if flat is not None:
                    stacked.movedim(d, 0).copy_(flat.view(members, -1))
        per_member = [t.view(members, -1) if t.numel() else t for t in (save_mean, save_invstd)]
        return ((unfold(out, members_channels), *per_member),
                (1, *(0 if t.numel() else None for t in per_member)))


def batch_norm(x: torch.Tensor, running_mean, running_var, weight, bias, training: bool, momentum: float,
               eps: float) -> torch.Tensor:
    """``F.batch_norm`` with the same arguments; on a CPU, for activations of ``FOLD_FROM`` elements or more
    (per member under vmap), through the member-folding rule.

    Under vmap on a GPU it calls torch's native kernel directly: there ``F.batch_norm``'s choice between that
    kernel and cuDNN's asks whether each member's channels-last view is contiguous, which vmap cannot answer,
    and a float32 ensemble of a batch-norm network stopped with "NYI: querying is_contiguous inside of vmap"
    (found on fake CUDA tensors, tests/test_capturable.py). For bf16 inputs (autocast) torch picks the native
    kernel itself, and one network alone keeps ``F.batch_norm`` (cuDNN in float32)."""
    if training and x.numel() <= x.shape[1]:  # one value per channel: F.batch_norm raises its own error
        return F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
    if x.device.type == "cpu" and x.numel() >= FOLD_FROM:
        return _BatchNorm.apply(x, weight, bias, running_mean, running_var, training, momentum, eps)[0]
    if x.device.type != "cpu" and _under_vmap(x):
        return torch.ops.aten.native_batch_norm(x, weight, bias, running_mean, running_var, training, momentum,
                                                eps)[0]
    return F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)


def _under_vmap(x: torch.Tensor) -> bool:
    is_batched = getattr(torch._C._functorch, "is_batchedtensor", None)  # private: if it moves, assume vmap
    return is_batched is None or torch.compiler.is_compiling() or is_batched(x)


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` through ``batch_norm`` (a fixed momentum, as every hpnb network uses)."""

    def __init__(self, num_features: int, **options):
        super().__init__(num_features, **options)
        if self.momentum is None:
            raise ValueError("BatchNorm2d: momentum=None (a cumulative average) is not supported; give a number")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
        use_running = not self.training or self.track_running_stats
        return batch_norm(x, self.running_mean if use_running else None, self.running_var if use_running else None,
                          self.weight, self.bias, self.training or self.running_mean is None, self.momentum,
                          self.eps)


__all__ = ["batch_norm", "BatchNorm2d"]
