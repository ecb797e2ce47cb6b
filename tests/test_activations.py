"""hpnb's ELU from exp is F.elu up to exp's rounding near 0, with torch's gradients, alone and in an ensemble's
vmap; hpnb uses it on CPUs where torch runs its AVX-512 kernels."""
import pytest
import torch
import torch.nn.functional as F
from torch.func import grad, vmap

from hpnb.models import activations
from hpnb.models.activations import elu_from_exp as elu

from conftest import ensemble_conv_case


def spread(*shape, dtype=torch.float32):
    """Values from far below 0 to far above it, most near 0 where expm1 and exp − 1 differ."""
    g = torch.Generator().manual_seed(0)
    return (torch.randn(shape, generator=g, dtype=dtype) * torch.logspace(-6, 1.5, shape[-1], dtype=dtype))


def test_float32_values_are_within_half_a_unit_at_1_of_torchs():
    x = spread(64, 4000)
    out, ref = elu(x), F.elu(x)
    assert (out - ref).abs().max() <= 2.0 ** -24
    assert torch.equal(out[x > 0], x[x > 0])  # the identity above 0, bit for bit
    assert torch.all(out >= x) and torch.all(out >= -1)  # eˣ − 1 ≥ x and > −1 hold after rounding too


def test_float64_values_match_torchs_to_double_precision():
    x = spread(16, 500, dtype=torch.float64)
    assert torch.allclose(elu(x), F.elu(x), rtol=0, atol=2.0 ** -53)


def test_special_values():
    x = torch.tensor([float("-inf"), -100.0, -0.0, 0.0, 1e-30, float("inf"), float("nan")])
    out = elu(x)
    assert out[:-1].tolist() == [-1.0, -1.0, 0.0, 0.0, x[4].item(), float("inf")]
    assert out[-1].isnan()


def test_gradients_are_torchs_once_and_twice():
    x = (torch.linspace(-8, 4, 49, dtype=torch.float64) + 0.1).requires_grad_()  # off the kink at 0
    assert torch.autograd.gradcheck(elu, (x,))
    assert torch.autograd.gradgradcheck(elu, (x,))
    direction = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(2))
    first, second = [], []
    for act in (elu, F.elu):
        g, = torch.autograd.grad(act(x).pow(3).sum(), x, create_graph=True)
        first.append(g.detach())
        second.append(torch.autograd.grad((g * direction).sum(), x)[0])  # a Hessian-vector product
    # from the output, eˣ is (eˣ − 1) + 1: exact to a unit at 1, as with torch's own in-place ELU
    assert torch.allclose(*first, rtol=1e-14, atol=2.0 ** -50) and torch.allclose(*second, rtol=1e-14, atol=2.0 ** -50)


@pytest.mark.parametrize("layout", ["members beside channels", "plain stack"])
def test_in_an_ensemble_each_member_is_activated_as_it_would_be_alone(layout):
    k = 3
    weights, x = ensemble_conv_case(6, layout, k)

    def member_loss(act):
        return lambda wk, xk: act(F.conv2d(xk, wk, padding=1)).square().sum()

    assert torch.allclose(vmap(member_loss(elu))(weights, x), vmap(member_loss(F.elu))(weights, x), rtol=1e-15)
    activated = vmap(elu)(x)  # elementwise: the members stay where they lie in memory
    assert activated.stride() == x.stride()
    per_member = vmap(grad(member_loss(elu)))(weights, x)  # the backward under vmap as well
    alone = torch.stack([grad(member_loss(F.elu))(weights[i], x[i]) for i in range(k)])
    assert torch.allclose(per_member, alone, rtol=1e-13)
    shared = vmap(lambda wk: elu(F.conv2d(x[0], wk, padding=1)), in_dims=0)(weights)  # a batched weight only
    assert torch.allclose(shared, F.elu(torch.stack([F.conv2d(x[0], w, padding=1) for w in weights])), rtol=1e-15)


@pytest.mark.parametrize("avx512", [True, False])
def test_the_exp_form_runs_on_a_cpu_with_avx512_kernels_only(monkeypatch, avx512):
    monkeypatch.setattr(activations, "FROM_EXP_ON_CPU", avx512)
    on_cpu = type(activations.elu(torch.ones(2, requires_grad=True)).grad_fn).__name__
    assert (on_cpu == "EluBackward0") != avx512
    off_cpu = activations.elu(torch.empty(4, 8, device="meta", requires_grad=True))  # CUDA's case: torch's
    assert type(off_cpu.grad_fn).__name__ == "EluBackward0"



def test_half_precision_keeps_torchs_elu(monkeypatch):
    """exp(x) − 1 in bfloat16 would round small negative values to 0."""
    monkeypatch.setattr(activations, "FROM_EXP_ON_CPU", True)
    x = torch.linspace(-3, 3, 64, dtype=torch.bfloat16, requires_grad=True)
    assert type(activations.elu(x).grad_fn).__name__ == "EluBackward0"
    assert type(activations.elu(x.detach().float().requires_grad_()).grad_fn).__name__ != "EluBackward0"


def test_an_ensemble_compiles_to_one_graph():
    weights, x = torch.randn(3, 4, 2, 3, 3), torch.randn(3, 5, 2, 6, 6)

    def members(w, xs):
        return vmap(lambda wk, xk: elu(F.conv2d(xk, wk, padding=1)))(w, xs)

    explained = torch._dynamo.explain(members)(weights, x)
    assert explained.graph_count == 1 and explained.graph_break_count == 0
    assert torch.allclose(torch.compile(members, backend="eager")(weights, x), members(weights, x), atol=1e-6)
