"""Model registry: ``build_model("vgg19", num_classes=50, batch_norm=False, width=0.25)``."""
from __future__ import annotations

import torch.nn as nn

from ..registry import Registry

# Filled from the data, not by the user.
MODEL_CONTEXT = ("num_classes", "in_channels", "image_size", "in_features")
MODELS = Registry("model", context=MODEL_CONTEXT)

from . import ldlt, mlp, mobilenet, resnet, simple_cnns, vgg  # noqa: E402,F401  (registration side effects)


def build_model(name: str, **options) -> nn.Module:
    """Build a registered model; context arguments (num_classes, in_channels, …) may be passed too."""
    context = {k: options.pop(k) for k in list(options) if k in MODEL_CONTEXT}
    return MODELS.build(name, options, **context)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
