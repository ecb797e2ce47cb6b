"""Output variance of an LDLT 𝓛-Lipschitz layer at initialisation (chapter 4).

For W0 ∈ ℝ^{m×n} with iid N(0, σ²) entries and x ~ N(0, Iₙ), the layer y = γ·W0(αI + W0ᵀW0)^{-1/2}x has
Var[y] = (γ²/m)·(m − α·E tr((αI_m + S)⁻¹)) with S = W0W0ᵀ ~ Wishart_m(n, σ²I). Three ways to get it:
exact moments E tr(Sᵏ) in a truncated series, Monte Carlo over draws of W0, and the Marchenko–Pastur limit.
"""
from __future__ import annotations

import functools
import math
from fractions import Fraction
from typing import Union

import numpy as np

Number = Union[int, Fraction]


@functools.lru_cache(maxsize=None)
def _mixed_moment(powers: tuple[int, ...], m: int, n: int) -> int:
    """E[Π tr(S^{pᵢ})] for S = WWᵀ, W ∈ ℝ^{m×n} with iid N(0, 1) entries (``powers`` sorted, all ≥ 1).

    Gaussian integration by parts (E[W_ab f(W)] = E[∂f/∂W_ab]) applied to one factor tr(Sᵏ) gives
      E[tr(Sᵏ)·P] = (n + k − 1)·E[tr(Sᵏ⁻¹)·P] + Σ_{j=1}^{k−1} E[tr(Sʲ) tr(Sᵏ⁻¹⁻ʲ)·P]
                    + Σ_{factors tr(Sˡ) of P} 2l·E[tr(Sᵏ⁺ˡ⁻¹)·P/tr(Sˡ)],
    with tr(S⁰) = m; every term has total degree one less, so the recursion ends at E[1] = 1.
    """
    if not powers:
        return 1
    k, rest = powers[-1], powers[:-1]

    def moment(*extra: int, base: tuple[int, ...] = rest) -> int:
        factor, keep = 1, []
        for p in base + extra:
            if p == 0:
                factor *= m  # tr(S⁰) = tr(I_m)
            else:
                keep.append(p)
        return factor * _mixed_moment(tuple(sorted(keep)), m, n)

    total = (n + k - 1) * moment(k - 1)
    total += sum(moment(j, k - 1 - j) for j in range(1, k))
    for i, l in enumerate(rest):
        others = rest[:i] + rest[i + 1:]
        total += 2 * l * moment(k + l - 1, base=others)
    return total


def wishart_trace_moment(k: int, m: int, n: int, sigma2: Number = 1) -> Number:
    """Exact E tr(Sᵏ) for S = W0W0ᵀ, W0 ∈ ℝ^{m×n} iid N(0, σ²); an integer, or a Fraction for rational σ²."""
    if not (isinstance(k, int) and 0 <= k <= 10):
        raise ValueError(f"k must be an integer in 0..10, got {k!r}")
    if m < 1 or n < 1:
        raise ValueError(f"m and n must be >= 1, got {m}, {n}")
    if k == 0:
        return m
    scale = Fraction(sigma2) ** k if not isinstance(sigma2, float) else Fraction(sigma2).limit_denominator(10**12) ** k
    value = _mixed_moment((k,), m, n) * scale
    return int(value) if value.denominator == 1 else value


def series_trace_inverse(m: int, n: int, sigma2: float, alpha: float, order: int = 10) -> float:
    """Σ_{k=0}^{K} (−1)ᵏ α^{−(k+1)} E tr(Sᵏ): the Neumann series of E tr((αI + S)⁻¹), truncated at ``order``.

    It converges only while the spectrum of S stays below α, roughly σ²(√m + √n)² < α.
    """
    s = Fraction(sigma2).limit_denominator(10**12)
    a = Fraction(alpha).limit_denominator(10**12)
    total = sum(Fraction((-1) ** k) / a ** (k + 1) * Fraction(wishart_trace_moment(k, m, n, s))
                for k in range(order + 1))
    return float(total)


def output_variance_from_trace(trace_inverse: float, m: int, alpha: float, gamma: float = 1.0) -> float:
    return gamma**2 / m * (m - alpha * trace_inverse)


def series_output_variance(m: int, n: int, sigma2: float, alpha: float = 1.0, gamma: float = 1.0,
                           order: int = 10) -> float:
    return output_variance_from_trace(series_trace_inverse(m, n, sigma2, alpha, order), m, alpha, gamma)


def series_converges(m: int, n: int, sigma2: float, alpha: float = 1.0) -> bool:
    """Whether the typical largest eigenvalue of S, σ²(√m + √n)², stays below α."""
    return sigma2 * (math.sqrt(m) + math.sqrt(n)) ** 2 < alpha


def monte_carlo_output_variance(m: int, n: int, sigma2: float, alpha: float = 1.0, gamma: float = 1.0,
                                draws: int = 200, seed: int = 0) -> tuple[float, float]:
    """(mean, standard error) of Var[y] over ``draws`` Gaussian W0, each evaluated exactly from S's spectrum."""
    rng = np.random.default_rng(seed)
    values = np.empty(draws)
    for i in range(draws):
        w = rng.standard_normal((m, n)) * math.sqrt(sigma2)
        eig = np.linalg.eigvalsh(w @ w.T)
        values[i] = output_variance_from_trace(float(np.sum(1.0 / (alpha + eig))), m, alpha, gamma)
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(draws))


def monte_carlo_trace_moment(k: int, m: int, n: int, sigma2: float = 1.0, draws: int = 2000,
                             seed: int = 0) -> tuple[float, float]:
    """(mean, standard error) of tr(Sᵏ) over random draws: the check on the exact moments."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((draws, m, n)) * math.sqrt(sigma2)
    eig = np.linalg.eigvalsh(w @ np.swapaxes(w, 1, 2))
    values = (eig**k).sum(axis=1)
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(draws))


def marchenko_pastur_output_variance(ratio: float, scale2: float, alpha: float = 1.0, gamma: float = 1.0) -> float:
    """Var[y] as m, n → ∞ with m/n = ``ratio`` and nσ² = ``scale2`` (σ = s/√n gives scale2 = s²).

    The eigenvalues of S/(nσ²) follow the Marchenko–Pastur law with ratio y = m/n (an atom 1 − 1/y at zero
    when y > 1), so Var[y] = γ²·E[λ/(α/(nσ²) + λ)] under that law.
    """
    from scipy.integrate import quad

    y = ratio
    lo, hi = (1 - math.sqrt(y)) ** 2, (1 + math.sqrt(y)) ** 2
    density = lambda x: math.sqrt(max((hi - x) * (x - lo), 0.0)) / (2 * math.pi * y * x)  # noqa: E731
    a = alpha / scale2
    # The substitution x = lo + (hi − lo)·sin²(θ) removes the square-root singularities at both edges.
    integrand = lambda t: density(lo + (hi - lo) * math.sin(t) ** 2) * (hi - lo) * math.sin(2 * t) \
        * (lo + (hi - lo) * math.sin(t) ** 2) / (a + lo + (hi - lo) * math.sin(t) ** 2)  # noqa: E731
    value, _ = quad(integrand, 0, math.pi / 2, limit=200)
    return gamma**2 * value  # the atom at zero contributes nothing


def solve_ratio(target: float, scale2: float = 1.0, alpha: float = 1.0, gamma: float = 1.0) -> float:
    """The aspect ratio m/n at which the Marchenko–Pastur variance equals ``target``."""
    from scipy.optimize import brentq

    f = lambda r: marchenko_pastur_output_variance(r, scale2, alpha, gamma) - target  # noqa: E731
    return float(brentq(f, 1e-3, 50.0))
