"""Measurements beyond loss and accuracy: per-layer activation variance and ROC-AUC."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn


def probed_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Conv/Linear layers, and any layer that marks itself with ``hpnb_probe = True``, in forward order."""
    return [(name, m) for name, m in model.named_modules()
            if getattr(m, "hpnb_probe", False) or isinstance(m, (nn.Conv2d, nn.Linear))]


@torch.no_grad()
def activation_variance(model: nn.Module, x: torch.Tensor) -> list[dict]:
    """Output variance (and std) of every probed layer on batch ``x``, plus the input's.

    The forward pass runs in train mode so batch norm normalises with batch statistics, as in training; its
    running buffers and the global RNG are restored afterwards, so probing never changes the run.
    """
    records, hooks = [], []
    for index, (name, module) in enumerate(probed_layers(model)):
        def hook(_module, _inputs, output, index=index, name=name):
            out = output.float()
            records.append({"layer_index": index + 1, "layer": name, "variance": out.var().item(),
                            "std": out.std().item()})
        hooks.append(module.register_forward_hook(hook))
    buffers = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    was_training = model.training
    devices = [x.device] if x.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            model.train()
            model(x)
    finally:
        for h in hooks:
            h.remove()
        model.load_state_dict(buffers, strict=False)
        model.train(was_training)
    inputs = {"layer_index": 0, "layer": "input", "variance": x.float().var().item(), "std": x.float().std().item()}
    return [inputs] + records


def roc_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """ROC-AUC of positive-class scores (scikit-learn); NaN when only one class is present."""
    from sklearn.metrics import roc_auc_score

    y = labels.cpu().numpy()
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, scores.float().cpu().numpy()))


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA (Kornblith et al. 2019) between two representations of the same N examples:
    ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F) after centring each feature."""
    x = x.double().flatten(1)
    y = y.double().flatten(1)
    x = x - x.mean(0)
    y = y - y.mean(0)
    cross = torch.linalg.matrix_norm(y.T @ x) ** 2
    norm = torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)
    return float(cross / norm) if norm > 0 else float("nan")


@torch.no_grad()
def input_output_cka(model: nn.Module, x: torch.Tensor) -> float:
    """CKA between the inputs and the model's last hidden representation (``model.features``)."""
    was_training = model.training
    model.eval()
    try:
        return linear_cka(x, model.features(x))
    finally:
        model.train(was_training)
