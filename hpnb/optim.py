"""Optimizers by name, written once over stacked parameters: every tensor has a leading member axis and every
hyperparameter is a vector with one value per member, so K runs with different learning rates, momenta or
weight decays take their steps together.

The arithmetic follows ``torch.optim``'s single-tensor implementations step for step (tests compare every
member against ``torch.optim`` on its own). All state, the step count included, lives on the device, so a
step can be captured in a CUDA graph; the learning rate is an argument of ``step`` for the same reason.
"""
from __future__ import annotations

from typing import Sequence

import torch

from .registry import NON_NEGATIVE, POSITIVE, UNIT_INTERVAL, Registry, checks

OPTIMIZERS = Registry("optimizer")
_BETAS = (lambda b: len(b) == 2 and all(0 <= x < 1 for x in b), "two numbers in [0, 1)")


def _per_member(values: Sequence[float], device, dtype=torch.float64) -> torch.Tensor:
    return torch.tensor([float(v) for v in values], device=device, dtype=dtype)


def _like(vector: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
    """A (K,) vector shaped to broadcast against a stacked (K, …) tensor, in its dtype."""
    return vector.to(tensor.dtype).view(-1, *([1] * (tensor.dim() - 1)))


class StackedOptimizer:
    """Shared plumbing: the stacked parameters, per-member hyperparameters and per-member state."""

    state_names: tuple[str, ...] = ()

    def __init__(self, params: dict[str, torch.Tensor], options: Sequence[dict]):
        self.params = params
        self.k = len(options)
        self.device = next(iter(params.values())).device
        self.options = [dict(o) for o in options]
        self.state = {name: {s: torch.zeros_like(p) for s in self.state_names} for name, p in params.items()}
        self.steps = torch.zeros(self.k, device=self.device, dtype=torch.float64)  # per member

    def hyper(self, key: str) -> torch.Tensor:
        return _per_member([o[key] for o in self.options], self.device)

    @torch.no_grad()
    def step(self, lr: torch.Tensor, active: torch.Tensor) -> None:
        """One update of every active member; ``lr`` and ``active`` are (K,) tensors on the device."""
        self.steps += active.to(self.steps.dtype)
        for name, p in self.params.items():
            if p.grad is not None:
                self._update(p, p.grad, self.state[name], lr, active)

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    # ------------------------------------------------------------------ per member, for checkpoints
    def member_state(self, k: int) -> dict:
        return {"steps": float(self.steps[k]),
                "state": {name: {s: t[k].detach().clone() for s, t in per.items()} for name, per in self.state.items()}}

    def load_member_state(self, k: int, saved: dict) -> None:
        self.steps[k] = saved["steps"]
        for name, per in saved["state"].items():
            for s, t in per.items():
                self.state[name][s][k].copy_(t)


class StackedSGD(StackedOptimizer):
    state_names = ("momentum_buffer",)

    def __init__(self, params, options):
        super().__init__(params, options)
        self.momentum, self.weight_decay = self.hyper("momentum"), self.hyper("weight_decay")
        self.nesterov = self.hyper("nesterov")
        self.any_nesterov = any(bool(o["nesterov"]) for o in self.options)  # from the options: no device read

    def _update(self, p, grad, state, lr, active):
        grad = grad + _like(self.weight_decay, p) * p
        buf = state["momentum_buffer"]
        # torch starts the buffer as a copy of the first gradient; momentum·0 + g is the same value.
        buf.mul_(_like(self.momentum, p)).add_(grad)
        step = grad + _like(self.momentum, p) * buf if self.any_nesterov else buf
        if self.any_nesterov:
            nesterov = _like(self.nesterov, p)
            step = nesterov * step + (1 - nesterov) * buf
        p.add_(step * _like(-lr * active, p))


class StackedAdam(StackedOptimizer):
    state_names = ("exp_avg", "exp_avg_sq")
    decoupled = False  # AdamW decays the weights directly instead of through the gradient

    def __init__(self, params, options):
        super().__init__(params, options)
        betas = [o["betas"] for o in self.options]
        self.beta1 = _per_member([b[0] for b in betas], self.device)
        self.beta2 = _per_member([b[1] for b in betas], self.device)
        self.eps, self.weight_decay = self.hyper("eps"), self.hyper("weight_decay")

    def _update(self, p, grad, state, lr, active):
        if self.decoupled:
            p.mul_(_like(1 - lr * self.weight_decay * active, p))
        else:
            grad = grad + _like(self.weight_decay, p) * p
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, _like(1 - self.beta1, p))
        exp_avg_sq.mul_(_like(self.beta2, p)).add_(grad * grad * _like(1 - self.beta2, p))
        steps = self.steps.clamp_min(1)
        bias_correction1 = 1 - self.beta1 ** steps
        bias_correction2_sqrt = (1 - self.beta2 ** steps).sqrt()
        denom = (exp_avg_sq.sqrt() / _like(bias_correction2_sqrt, p)).add_(_like(self.eps, p))
        p.add_(exp_avg / denom * _like(-(lr / bias_correction1) * active, p))


class StackedAdamW(StackedAdam):
    decoupled = True


@OPTIMIZERS.register("sgd")
@checks(lr=POSITIVE, momentum=UNIT_INTERVAL, weight_decay=NON_NEGATIVE)
def sgd(lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False):
    """SGD with momentum and L2 weight decay, as ``torch.optim.SGD`` (dampening 0)."""
    return StackedSGD


@OPTIMIZERS.register("adam")
@checks(lr=POSITIVE, weight_decay=NON_NEGATIVE, eps=POSITIVE, betas=_BETAS)
def adam(lr: float = 1e-3, betas: tuple[float, ...] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
    """Adam with L2 weight decay through the gradient, as ``torch.optim.Adam``."""
    return StackedAdam


@OPTIMIZERS.register("adamw")
@checks(lr=POSITIVE, weight_decay=NON_NEGATIVE, eps=POSITIVE, betas=_BETAS)
def adamw(lr: float = 1e-3, betas: tuple[float, ...] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.01):
    """Adam with decoupled weight decay, as ``torch.optim.AdamW``."""
    return StackedAdamW


def build_optimizer(name: str, params: dict[str, torch.Tensor], options: Sequence[dict]) -> StackedOptimizer:
    """The optimizer ``name`` over stacked ``params``, member k with hyperparameters ``options[k]``."""
    return OPTIMIZERS.get(name)()(params, options)


__all__ = ["OPTIMIZERS", "build_optimizer", "StackedOptimizer", "StackedSGD", "StackedAdam", "StackedAdamW"]
