import math
from fractions import Fraction

import pytest
import torch

from hpnb import build_model, theory
from hpnb.models.ldlt import LDLTLinear
from hpnb.probes import linear_cka


def test_low_moments_match_their_closed_forms():
    for m, n in [(1, 1), (3, 5), (7, 2)]:
        assert theory.wishart_trace_moment(0, m, n) == m
        assert theory.wishart_trace_moment(1, m, n) == m * n
        assert theory.wishart_trace_moment(2, m, n) == m * n * (m + n + 1)
    # σ² scales the k-th moment by σ^(2k), exactly
    assert theory.wishart_trace_moment(2, 3, 5, Fraction(1, 4)) == Fraction(135, 16)


def test_scalar_case_is_the_chi_square_moments():
    # m = 1: tr(S^k) = (χ²_n)^k, whose k-th moment is n(n+2)…(n+2k−2)
    for n in (1, 3, 8):
        for k in range(1, 11):
            assert theory.wishart_trace_moment(k, 1, n) == math.prod(n + 2 * i for i in range(k))


@pytest.mark.parametrize("k", range(1, 11))
def test_moments_are_symmetric_in_m_and_n(k):
    assert theory.wishart_trace_moment(k, 4, 9) == theory.wishart_trace_moment(k, 9, 4)


@pytest.mark.parametrize("k, m, n", [(3, 4, 6), (4, 5, 5), (6, 3, 7), (10, 2, 3), (5, 8, 2)])
def test_exact_moments_agree_with_brute_force_monte_carlo(k, m, n):
    exact = theory.wishart_trace_moment(k, m, n)
    mean, se = theory.monte_carlo_trace_moment(k, m, n, draws=40_000, seed=k * 100 + m)
    assert abs(mean - exact) < 4 * se, (mean, exact, se)


def test_out_of_range_order_is_rejected():
    with pytest.raises(ValueError, match="0..10"):
        theory.wishart_trace_moment(11, 2, 2)


def test_series_matches_monte_carlo_where_it_converges_and_says_where_it_does_not():
    m = n = 32
    sigma2 = 0.05 / n
    assert theory.series_converges(m, n, sigma2)
    mc, se = theory.monte_carlo_output_variance(m, n, sigma2, draws=400, seed=3)
    assert theory.series_output_variance(m, n, sigma2) == pytest.approx(mc, abs=4 * se + 1e-4)
    assert not theory.series_converges(m, n, 1.0 / n)


def test_marchenko_pastur_limit_and_the_reference_points():
    # square layer, γ = α = 1: (3 − √5)/2 at s = 1, about 0.905 at s = 10
    assert theory.marchenko_pastur_output_variance(1.0, 1.0) == pytest.approx((3 - math.sqrt(5)) / 2, abs=1e-6)
    assert theory.marchenko_pastur_output_variance(1.0, 100.0) == pytest.approx(0.905, abs=0.001)
    mc, se = theory.monte_carlo_output_variance(200, 100, 4.0 / 100, draws=30, seed=0)
    assert theory.marchenko_pastur_output_variance(2.0, 4.0) == pytest.approx(mc, abs=0.01)
    ratio = theory.solve_ratio(0.41)
    assert theory.marchenko_pastur_output_variance(ratio, 1.0) == pytest.approx(0.41, abs=1e-6)


@pytest.mark.parametrize("normalisation", ["cholesky", "symmetric"])
def test_ldlt_layer_spectral_norm_never_exceeds_gamma(normalisation):
    torch.manual_seed(0)
    for trial in range(20):
        m, n = torch.randint(1, 40, (2,)).tolist()
        layer = LDLTLinear(n, m, gamma=1.7, alpha=float(torch.rand(1)) + 0.01, normalisation=normalisation)
        with torch.no_grad():
            layer.weight0.normal_(0, float(torch.rand(1)) * 20)
        w = layer.weight()
        # γ·s/√(s² + α) < γ exactly; with s ≫ √α float32 rounds the ratio to 1, so allow a few float32 ulps
        # there, and check the strict bound in float64.
        assert torch.linalg.matrix_norm(w, ord=2) <= 1.7 * (1 + 1e-4)
        assert torch.linalg.matrix_norm(layer.double().weight(), ord=2) <= 1.7 * (1 + 1e-12)
        layer.float()
        s0 = torch.linalg.svdvals(layer.weight0.double())
        expected = 1.7 * s0 / torch.sqrt(s0**2 + layer.alpha.double())
        assert torch.allclose(torch.linalg.svdvals(w.double())[: len(s0)], expected, rtol=1e-3, atol=1e-5)


def test_both_normalisations_have_the_same_output_covariance():
    torch.manual_seed(1)
    a, b = LDLTLinear(16, 8, normalisation="cholesky"), LDLTLinear(16, 8, normalisation="symmetric")
    with torch.no_grad():
        b.weight0.copy_(a.weight0)
    wa, wb = a.weight().double(), b.weight().double()
    assert torch.allclose(wa @ wa.T, wb @ wb.T, atol=1e-5)


def test_ldlt_mlp_structure_and_init_hook():
    from hpnb.init import initialise

    model = build_model("ldlt_mlp", in_features=28, num_classes=2, depth=3, width=16)
    assert len(model.hidden) == 3 and float(model.hidden[0].gamma) == pytest.approx(math.sqrt(2))
    assert float(model.output.gamma) == 1.0 and model.output.alpha.item() == pytest.approx(1.0)
    torch.manual_seed(0)
    initialise(model, "scaled_normal", {"scale": 10.0})
    assert model.hidden[1].weight0.std().item() == pytest.approx(10 / math.sqrt(16), rel=0.15)


def test_linear_cka_properties():
    torch.manual_seed(0)
    x = torch.randn(200, 10)
    y = torch.tanh(x @ torch.randn(10, 6))
    q, _ = torch.linalg.qr(torch.randn(10, 10))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, 3.5 * x @ q) == pytest.approx(1.0)  # orthogonal transform and isotropic scaling
    assert linear_cka(x, y) == pytest.approx(linear_cka(x @ q * 0.1, y * 7))
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x))
    assert 0 < linear_cka(x, torch.randn(200, 6)) < 0.2
