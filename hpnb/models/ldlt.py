"""LDLT 𝓛-Lipschitz layers: W̃ = γ·W0·(αI + W0ᵀW0)^{-1/2}, so every singular value is below γ.

The singular values of W̃ are γ·s/√(s² + α) for the singular values s of W0. ``symmetric`` uses the
symmetric inverse square root (eigendecomposition); ``cholesky`` uses W0·R⁻¹ with RᵀR = W0ᵀW0 + αI, as the
public implementations do: the same singular values, and the same output covariance at initialisation.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import POSITIVE, checks
from . import MODELS


class LDLTLinear(nn.Module):
    hpnb_probe = True  # probed as a layer by the activation-variance probe

    def __init__(self, in_features: int, out_features: int, gamma: float = 1.0, alpha: float = 1.0,
                 normalisation: str = "cholesky", bias: bool = True):
        super().__init__()
        self.weight0 = nn.Parameter(torch.empty(out_features, in_features))
        self.log_alpha = nn.Parameter(torch.tensor(math.log(alpha)))  # α = exp(·) stays positive
        self.register_buffer("gamma", torch.tensor(float(gamma)))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.normalisation = normalisation
        nn.init.kaiming_normal_(self.weight0, nonlinearity="relu")

    @property
    def hpnb_init_weight(self) -> torch.Tensor:
        """The raw W0, which hpnb's initialisers fill."""
        return self.weight0

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp()

    def weight(self) -> torch.Tensor:
        # Never in bf16, autocast included: a Gram matrix rounded to bf16 would let singular values pass γ.
        with torch.autocast("cuda" if self.weight0.is_cuda else "cpu", enabled=False):
            return self._normalised_weight()

    def _normalised_weight(self) -> torch.Tensor:
        w0 = self.weight0.to(torch.promote_types(self.weight0.dtype, torch.float32))
        gram = w0.T @ w0 + self.alpha * torch.eye(w0.shape[1], device=w0.device, dtype=w0.dtype)
        if self.normalisation == "symmetric":
            # eigh checks convergence on the host (no sync-free variant): on CUDA this normalisation trains
            # eagerly, the step cannot be graph-captured (hpnb.graphs falls back, saying so).
            eigval, eigvec = torch.linalg.eigh(gram)
            inv_sqrt = eigvec @ torch.diag(eigval.rsqrt()) @ eigvec.T
            return self.gamma * w0 @ inv_sqrt
        # cholesky_ex, not cholesky: the latter reads its error code back to the host, a sync that stops a
        # training step from being captured in a CUDA graph. A factorisation that fails (α underflowing beside
        # a huge W0ᵀW0) gives NaN instead, which the training loop reports as divergence.
        lower, info = torch.linalg.cholesky_ex(gram)
        r = torch.where(info == 0, lower.T, torch.nan)  # upper triangular, RᵀR = gram
        # W0·R⁻¹ without forming the inverse: solve X·R = W0.
        return self.gamma * torch.linalg.solve_triangular(r, w0, upper=True, left=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight().to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))


class LDLTNet(nn.Module):
    def __init__(self, in_features: int, num_classes: int, depth: int, width: int, hidden_gamma: float,
                 output_gamma: float, alpha: float, normalisation: str):
        super().__init__()
        dims = [in_features] + [width] * depth
        self.hidden = nn.ModuleList(LDLTLinear(a, b, hidden_gamma, alpha, normalisation) for a, b in zip(dims, dims[1:]))
        self.output = LDLTLinear(dims[-1], num_classes, output_gamma, alpha, normalisation)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's activations (what the input–output CKA compares with the input)."""
        x = x.flatten(1)  # images as vectors; tables unchanged
        for layer in self.hidden:
            x = F.relu(layer(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.features(x))


@MODELS.register("ldlt_mlp")
@checks(depth=(lambda v: v >= 1, "an integer >= 1"), width=(lambda v: v >= 1, "an integer >= 1"),
        hidden_gamma=POSITIVE, output_gamma=POSITIVE, alpha=POSITIVE)
def ldlt_mlp(in_features: int = 28, num_classes: int = 2, depth: int = 4, width: int = 64,
             hidden_gamma: float = math.sqrt(2), output_gamma: float = 1.0, alpha: float = 1.0,
             normalisation: Literal["cholesky", "symmetric"] = "cholesky") -> LDLTNet:
    """``depth`` LDLT hidden layers with ReLU (γ = √2) and an LDLT output layer (γ = 1); α learnable, from 1."""
    return LDLTNet(in_features, num_classes, depth, width, hidden_gamma, output_gamma, alpha, normalisation)
