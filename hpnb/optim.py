"""Optimizers by name: thin, validated wrappers around torch.optim."""
from __future__ import annotations

import torch

from .registry import NON_NEGATIVE, POSITIVE, UNIT_INTERVAL, Registry, checks

OPTIMIZERS = Registry("optimizer")


@OPTIMIZERS.register("sgd")
@checks(lr=POSITIVE, momentum=UNIT_INTERVAL, weight_decay=NON_NEGATIVE)
def sgd(params, lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False):
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)


_BETAS = (lambda b: len(b) == 2 and all(0 <= x < 1 for x in b), "two numbers in [0, 1)")


@OPTIMIZERS.register("adam")
@checks(lr=POSITIVE, weight_decay=NON_NEGATIVE, eps=POSITIVE, betas=_BETAS)
def adam(params, lr: float = 1e-3, betas: tuple[float, ...] = (0.9, 0.999), eps: float = 1e-8,
         weight_decay: float = 0.0):
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)


@OPTIMIZERS.register("adamw")
@checks(lr=POSITIVE, weight_decay=NON_NEGATIVE, eps=POSITIVE, betas=_BETAS)
def adamw(params, lr: float = 1e-3, betas: tuple[float, ...] = (0.9, 0.999), eps: float = 1e-8,
          weight_decay: float = 0.01):
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)


def build_optimizer(params, name: str, options: dict) -> torch.optim.Optimizer:
    return OPTIMIZERS.build(name, options, params)
