"""Weight initialisation by name, applied to every Conv2d/Linear weight (biases set to zero)."""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from .registry import POSITIVE, Registry, checks

INITS = Registry("init")


def _layers(model: nn.Module):
    # Layers may opt in with ``hpnb_init_weight`` (e.g. LDLT layers expose their raw W0).
    for module in model.modules():
        weight = getattr(module, "hpnb_init_weight", None)
        if weight is None and isinstance(module, (nn.Conv2d, nn.Linear)):
            weight = module.weight
        if weight is not None:
            yield module, weight


def _apply(model: nn.Module, fill) -> nn.Module:
    with torch.no_grad():
        for module, weight in _layers(model):
            fill(weight)
            if getattr(module, "bias", None) is not None:
                module.bias.zero_()
    return model


@INITS.register("default")
def default(model: nn.Module) -> nn.Module:
    """Leave PyTorch's own initialisation in place."""
    return model


@INITS.register("kaiming_normal")
def kaiming_normal(model: nn.Module) -> nn.Module:
    """N(0, 2/fan_in): He et al. 2015, fan_in mode, ReLU gain."""
    return _apply(model, lambda w: nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu"))


@INITS.register("kaiming_uniform")
def kaiming_uniform(model: nn.Module) -> nn.Module:
    """U(±√(6/fan_in)): He et al. 2015, fan_in mode, ReLU gain."""
    return _apply(model, lambda w: nn.init.kaiming_uniform_(w, mode="fan_in", nonlinearity="relu"))


@INITS.register("xavier_normal")
def xavier_normal(model: nn.Module) -> nn.Module:
    """N(0, 2/(fan_in + fan_out)): Glorot & Bengio 2010, gain 1."""
    return _apply(model, lambda w: nn.init.xavier_normal_(w, gain=1.0))


@INITS.register("xavier_uniform")
def xavier_uniform(model: nn.Module) -> nn.Module:
    """U(±√(6/(fan_in + fan_out))): Glorot & Bengio 2010, gain 1."""
    return _apply(model, lambda w: nn.init.xavier_uniform_(w, gain=1.0))


@INITS.register("scaled_normal")
@checks(scale=POSITIVE)
def scaled_normal(model: nn.Module, scale: float = 1.0) -> nn.Module:
    """N(0, σ²) with σ = scale/√fan_in."""

    def fill(w):
        fan_in, _ = nn.init._calculate_fan_in_and_fan_out(w)
        nn.init.normal_(w, std=scale / math.sqrt(fan_in))

    return _apply(model, fill)


def initialise(model: nn.Module, name: str, options: dict) -> nn.Module:
    return INITS.build(name, options, model)
