"""K copies of one network, their parameters and buffers stacked along a leading member axis.

``torch.func.functional_call`` runs the shared architecture with one member's tensors and ``torch.func.vmap``
maps it over the member axis, so K runs take one step together: convolutions become grouped convolutions,
linear layers batched matrix products. Members never mix: the gradient of the summed losses with respect to
member k's slice is member k's own gradient. A stack of one calls the network directly (no vmap).
"""
from __future__ import annotations

import copy
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap


class ModelStack:
    def __init__(self, models: Sequence[nn.Module]):
        self.k = len(models)
        params, buffers = stack_module_state(list(models))
        self.params: dict[str, torch.Tensor] = params  # leaves with requires_grad, shape (K, …)
        self.buffers: dict[str, torch.Tensor] = buffers
        # The architecture without storage: every call supplies the member tensors.
        self.template = copy.deepcopy(models[0]).to("meta")
        self.device = next(iter(params.values())).device

    # ------------------------------------------------------------------ calls
    def _member_loss(self, params, buffers, x, y, noise):
        out = functional_call(self.template, (params, buffers), (x,), {"noise": noise} if noise else {})
        out = out.to(torch.promote_types(out.dtype, torch.float32))  # bf16 logits → fp32 for the loss
        return F.cross_entropy(out, y), (out.argmax(-1) == y).sum()

    def losses(self, x: torch.Tensor, y: torch.Tensor, noise: Optional[dict] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-member mean loss (K,) and correct predictions (K,) on batches x (K, B, …), y (K, B)."""
        if self.k == 1:
            loss, correct = self._member_loss(self._member(0), self._member_buffers(0), x[0], y[0],
                                              {n: t[0] for n, t in noise.items()} if noise else None)
            return loss[None], correct[None]
        return vmap(self._member_loss, in_dims=(0, 0, 0, 0, 0 if noise else None))(
            self.params, self.buffers, x, y, noise)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Every member's output on the same inputs x (B, …): (K, B, classes)."""
        call = lambda p, b: functional_call(self.template, (p, b), (x,))  # noqa: E731
        if self.k == 1:
            return call(self._member(0), self._member_buffers(0))[None]
        return vmap(call)(self.params, self.buffers)

    def train(self, mode: bool = True) -> None:
        self.template.train(mode)

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to networks whose behaviour depends on it (shared by all members)."""
        if hasattr(self.template, "set_epoch"):
            self.template.set_epoch(epoch)

    def noise(self, batch: int, generators: Sequence[torch.Generator]) -> Optional[dict[str, torch.Tensor]]:
        """Random inputs of one training batch (dropout masks), each member's from its own generator,
        stacked (K, …); None for networks that draw none."""
        draw = getattr(self.template, "draw_noise", None)
        draws = [draw(batch, g) for g in generators] if draw is not None else [{}]
        if not draws[0]:
            return None
        return {name: torch.stack([d[name] for d in draws]) for name in draws[0]}

    def _member(self, k: int) -> dict:
        return {name: p[k] for name, p in self.params.items()}

    def _member_buffers(self, k: int) -> dict:
        return {name: b[k] for name, b in self.buffers.items()}

    # ------------------------------------------------------------------ one member at a time
    def state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's weights as a plain module state_dict (detached copies)."""
        state = {name: t[k].detach().clone() for name, t in {**self.params, **self.buffers}.items()}
        order = self.template.state_dict().keys()
        return {name: state[name] for name in order}

    def load_state_dict(self, k: int, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, t in {**self.params, **self.buffers}.items():
                t[k].copy_(state[name])

    def module(self, k: int) -> nn.Module:
        """A real module holding a copy of member k's weights (for probes that hook layers)."""
        module = copy.deepcopy(self.template).to_empty(device=self.device)
        module.load_state_dict(self.state_dict(k))
        module.train(self.template.training)
        return module

    def parameter_count(self) -> int:
        return sum(p[0].numel() for p in self.params.values())
