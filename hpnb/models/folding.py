"""An ensemble's member axis folded into the channels, for layers whose per-channel kernels can then serve every
member at once (max pooling, batch norm).

Under ``torch.func.vmap`` (``hpnb.stack``) a convolution becomes one grouped convolution whose output holds the
members beside the channels: (B, K·C, H, W). A layer's own vmap rule can hand that tensor, as it lies, to the
kernel torch runs for a single network, where torch's rules for these layers copy the activations member-first
or split the work into strided elementwise passes.
"""
from __future__ import annotations

from typing import Optional

import torch


def fold(t: torch.Tensor, member_dim: Optional[int], members: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """A batched (N, C, H, W) with its member axis at ``member_dim`` (None: shared by all) as (N, K·C, H, W),
    and (K, C) to unfold the result. A view when the members lie beside the channels in memory."""
    t = t.unsqueeze(1).expand(t.shape[0], members, *t.shape[1:]) if member_dim is None else t.movedim(member_dim, 1)
    return t.reshape(t.shape[0], -1, *t.shape[-2:]), (t.shape[1], t.shape[2])


def unfold(t: torch.Tensor, members_channels: tuple[int, int]) -> torch.Tensor:
    """(N, K·C, H, W) back to (N, K, C, H, W): the members at dim 1."""
    return t.view(t.shape[0], *members_channels, *t.shape[-2:])


def fold_per_channel(t: Optional[torch.Tensor], member_dim: Optional[int], members: int) -> Optional[torch.Tensor]:
    """A per-channel vector (C,) batched at ``member_dim`` (None: shared by all) as (K·C,), in the order ``fold``
    gives the channels. A view of a stacked (K, C) tensor, so in-place updates reach it."""
    if t is None:
        return None
    if member_dim is None:
        return t.expand(members, *t.shape).reshape(-1)
    return t.movedim(member_dim, 0).reshape(-1)


__all__ = ["fold", "unfold", "fold_per_channel"]
