"""Model registry: ``build_model("vgg19", num_classes=50, batch_norm=False, width=0.25)``."""
from __future__ import annotations

import inspect
import math

import torch
import torch.nn as nn

from ..registry import Registry

# Filled from the data, not by the user.
MODEL_CONTEXT = ("num_classes", "in_channels", "image_size", "in_features")
MODELS = Registry("model", context=MODEL_CONTEXT)

# Networks trained in channels-last memory on a CPU too (on CUDA every conv net is). MobileNet's depthwise
# convolutions ran 2.0x faster per ensemble step that way. VGG-19 and the chapter-3 networks gained once an
# ensemble's members lie beside the channels (hpnb.batches.members_beside_channels) and max pooling keeps that
# layout (hpnb.models.pooling): per step 1.21x for VGG-19 (1.50x with batch norm, its ReLU no longer in place),
# 1.08-1.36x for the chapter-3 ensembles of 26 (scripts/bench_cpu_layout.py over two runs; quick profile,
# 2-core EPYC, torch 2.14.1); MobileNet's step with its members beside the channels moved within the noise
# (1.06-1.16x). ResNet-34 gained nothing beyond the machine's noise and stays NCHW.
CHANNELS_LAST_ON_CPU = frozenset({"mobilenet", "vgg19", "mnist_cnn", "cifar_cnn"})

from . import ldlt, mlp, mobilenet, resnet, simple_cnns, vgg  # noqa: E402,F401  (registration side effects)


def build_model(name: str, **options) -> nn.Module:
    """Build a registered model; context arguments (num_classes, in_channels, …) may be passed too."""
    context = {k: options.pop(k) for k in list(options) if k in MODEL_CONTEXT}
    return MODELS.build(name, options, **context)


def model_context(input_shape: tuple, num_classes: int) -> dict:
    """What a model takes from its data: the classes, the flattened input size (any input, so an MLP can read
    images) and, for images (C, H, W), the channels and side."""
    context = {"num_classes": num_classes, "in_features": math.prod(input_shape)}
    if len(input_shape) == 3:
        context.update(in_channels=input_shape[0], image_size=input_shape[1])
    return context


def input_mismatch(name: str, options: dict, input_shape: tuple, num_classes: int) -> str | None:
    """Why model ``name`` cannot take inputs of ``input_shape`` (None when it can): one forward pass of two
    samples on the meta device, so nothing is allocated or computed."""
    takes = inspect.signature(MODELS.get(name)).parameters
    if "in_channels" in takes and len(input_shape) != 3:
        return (f"it is an image network (it takes channels and an image size), and these samples are not "
                f"images")
    with torch.device("meta"):
        model = build_model(name, **options, **model_context(input_shape, num_classes))
        try:
            out = model(torch.empty(2, *input_shape))
        except (RuntimeError, ValueError, IndexError) as err:
            return str(err).splitlines()[0]
    if tuple(out.shape) != (2, num_classes):
        return f"it gives outputs of shape {tuple(out.shape)[1:]} for {num_classes} classes"
    return None


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
