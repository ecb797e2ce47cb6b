"""hpnb's batch norm is nn.BatchNorm2d: the same kernels for one network, and inside an ensemble's vmap each
member normalised, scaled, shifted and tracked as it would be alone, in one folded kernel call."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, grad, stack_module_state, vmap

from hpnb.batches import members_beside_channels
from hpnb.models import batchnorm
from hpnb.models.batchnorm import BatchNorm2d


@pytest.fixture(autouse=True)
def fold_every_size(monkeypatch):
    """The tests' tensors are small: fold them too (hpnb leaves small ones to torch's rule)."""
    monkeypatch.setattr(batchnorm, "FOLD_FROM", 0)


def pair(channels=3, seed=0):
    """hpnb's layer and torch's with the same (non-trivial) affine weights and running statistics."""
    torch.manual_seed(seed)
    ours, theirs = BatchNorm2d(channels).double(), nn.BatchNorm2d(channels).double()
    with torch.no_grad():
        for m in (ours, theirs):
            m.weight.copy_(torch.linspace(0.5, 2.0, channels))
            m.bias.copy_(torch.linspace(-1.0, 1.0, channels))
            m.running_mean.copy_(torch.linspace(-0.2, 0.3, channels))
            m.running_var.copy_(torch.linspace(0.8, 1.5, channels))
    return ours, theirs


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("channels_last", [False, True])
def test_one_network_gets_torchs_values_gradients_and_statistics_bit_for_bit(training, channels_last):
    ours, theirs = pair()
    x = torch.randn(4, 3, 5, 6, dtype=torch.float64) * 3 + 1
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    results = []
    for m in (ours, theirs):
        m.train(training)
        a = x.clone().requires_grad_()
        out = m(a)
        out.backward(torch.arange(out.numel(), dtype=out.dtype).view_as(out).sin())
        results.append([out, a.grad, m.weight.grad, m.bias.grad, m.running_mean, m.running_var,
                        m.num_batches_tracked])
    for mine, torchs in zip(*results):
        assert torch.equal(mine, torchs)


def stacked(modules):
    params, buffers = stack_module_state(modules)
    return {k: v.detach().clone().requires_grad_() for k, v in params.items()}, buffers


@pytest.mark.parametrize("layout", ["members beside channels", "plain stack", "shared input"])
def test_in_an_ensemble_each_member_is_normalised_and_tracked_as_it_would_be_alone(layout):
    k = 3
    members = [pair(seed=i)[0] for i in range(k)]
    with torch.no_grad():
        for i, m in enumerate(members):
            m.weight.mul_(i + 1)
            m.running_mean.add_(i)
    alone = [nn.BatchNorm2d(3).double() for _ in range(k)]
    for a, m in zip(alone, members):
        a.load_state_dict(m.state_dict())
    x = torch.randn(k, 4, 3, 5, 5, dtype=torch.float64) * torch.arange(1, k + 1).view(k, 1, 1, 1, 1)
    if layout == "members beside channels":
        x = members_beside_channels(x)
    in_x = None if layout == "shared input" else 0
    if layout == "shared input":
        x = x[0]
    params, buffers = stacked(members)
    template = members[0]
    out = vmap(lambda p, b, xk: functional_call(template, (p, b), (xk,)), in_dims=(0, 0, in_x))(params, buffers, x)
    g = torch.randn(out.shape, dtype=out.dtype)
    out.backward(g)
    for i, a in enumerate(alone):
        xi = x if layout == "shared input" else x[i]
        ai = xi.clone()
        ref = a(ai)
        ref.backward(g[i])
        assert torch.allclose(out[i], ref, rtol=1e-12, atol=1e-12)
        assert torch.allclose(params["weight"].grad[i], a.weight.grad, rtol=1e-10, atol=1e-12)
        assert torch.allclose(params["bias"].grad[i], a.bias.grad, rtol=1e-10, atol=1e-12)
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            assert torch.allclose(buffers[name][i], getattr(a, name), rtol=1e-12, atol=1e-14), name
    # evaluation: the running statistics, no update
    template.eval()
    before = {n: b.clone() for n, b in buffers.items()}
    out = vmap(lambda p, b, xk: functional_call(template, (p, b), (xk,)), in_dims=(0, 0, in_x))(params, buffers, x)
    for i, a in enumerate(alone):
        a.eval()
        assert torch.allclose(out[i], a(x if layout == "shared input" else x[i]), rtol=1e-12, atol=1e-12)
    assert all(torch.equal(before[n], buffers[n]) for n in buffers)


def test_per_member_gradients_through_torch_func():
    """vmap(grad(...)), where the backward itself runs under vmap."""
    k = 3
    members = [pair(seed=i)[0] for i in range(k)]
    params, buffers = stacked(members)
    x = torch.randn(k, 4, 3, 5, 5, dtype=torch.float64)
    template = members[0]

    def loss(p, b, xk):
        return functional_call(template, (p, b), (xk,)).pow(3).sum()

    per_member = vmap(grad(loss))(params, buffers, x)
    for i in range(k):
        alone = nn.BatchNorm2d(3).double()
        alone.load_state_dict(members[i].state_dict())
        alone(x[i]).pow(3).sum().backward()
        assert torch.allclose(per_member["weight"][i], alone.weight.grad, rtol=1e-10)


def test_second_derivatives_are_torchs():
    ours, theirs = pair()
    x = torch.randn(4, 3, 5, 5, dtype=torch.float64)
    direction = torch.randn(x.shape, dtype=x.dtype)
    products = []
    for m in (ours, theirs):
        a = x.clone().requires_grad_()
        gx, = torch.autograd.grad(m(a).pow(3).sum(), a, create_graph=True)
        products.append(torch.autograd.grad((gx * direction).sum(), a)[0])
    assert products[0].abs().sum() > 0 and torch.allclose(*products, rtol=1e-10, atol=1e-12)


def test_members_cannot_share_a_running_statistic_in_training():
    m = BatchNorm2d(3)
    params, buffers = stacked([m, BatchNorm2d(3)])
    shared = {n: (b[0] if n == "running_mean" else b) for n, b in buffers.items()}
    with pytest.raises(ValueError, match="share one running mean"):
        vmap(lambda p, b, xk: functional_call(m, (p, b), (xk,)), in_dims=(0, {"running_mean": None,
             "running_var": 0, "num_batches_tracked": 0}, 0))(params, shared, torch.randn(2, 4, 3, 5, 5))


def graph_nodes(t: torch.Tensor) -> set[str]:
    seen, todo = set(), [t.grad_fn]
    while todo:
        node = todo.pop()
        if node is not None and type(node).__name__ not in seen:
            seen.add(type(node).__name__)
            todo += [n for n, _ in node.next_functions]
    return seen


def test_small_activations_take_torchs_rule_and_large_ones_the_fold(monkeypatch):
    monkeypatch.setattr(batchnorm, "FOLD_FROM", 1000)
    m = BatchNorm2d(4)
    params, buffers = stacked([m, BatchNorm2d(4)])
    for side, expected in ((5, "torch"), (16, "fold")):  # 2·4·5·5 = 200 and 2·4·16·16 = 2048 elements per member
        x = torch.randn(2, 2, 4, side, side)
        out = vmap(lambda p, b, xk: functional_call(m, (p, b), (xk,)))(params, buffers, x)
        assert ("_BatchNormBackward" in graph_nodes(out)) == (expected == "fold")
        assert ("MulBackward0" in graph_nodes(out)) == (expected == "torch")  # torch's rule scales apart


def test_a_cumulative_average_is_refused():
    with pytest.raises(ValueError, match="momentum=None"):
        BatchNorm2d(3, momentum=None)
