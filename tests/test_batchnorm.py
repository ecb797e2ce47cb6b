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

from conftest import graph_nodes


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


def run_members(template, params, buffers, x, in_dims=(0, 0, 0)):
    return vmap(lambda p, b, xk: functional_call(template, (p, b), (xk,)), in_dims=in_dims)(params, buffers, x)


def test_statistics_stacked_members_last_are_updated_too():
    """Buffers whose member axis is not in front cannot fold into a view: the update is written back."""
    members = [pair(seed=i)[0] for i in range(3)]
    params, buffers = stacked(members)
    buffers = {n: b.movedim(0, -1).contiguous() if b.dim() else b for n, b in buffers.items()}  # (C, K)
    dims = {n: (-1 if b.dim() else 0) for n, b in buffers.items()}
    x = torch.randn(3, 4, 3, 5, 5, dtype=torch.float64)
    run_members(members[0], params, buffers, x, in_dims=(0, dims, 0))
    for i, m in enumerate(members):
        alone = nn.BatchNorm2d(3).double()
        alone.load_state_dict(m.state_dict())
        alone(x[i])
        assert torch.allclose(buffers["running_mean"][:, i], alone.running_mean, rtol=1e-12)
        assert torch.allclose(buffers["running_var"][:, i], alone.running_var, rtol=1e-12)


@pytest.mark.parametrize("options", [{"affine": False}, {"track_running_stats": False},
                                     {"affine": False, "track_running_stats": False}])
def test_layers_without_affine_weights_or_running_statistics(options):
    torch.manual_seed(0)
    members = [BatchNorm2d(3, **options).double() for _ in range(2)]
    x = torch.randn(2, 4, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    params, buffers = stacked(members)
    for training in (False, True):  # evaluation first, while the running statistics are the fresh ones
        members[0].train(training)
        out = run_members(members[0], params, buffers, x)
        gx, = torch.autograd.grad(out.pow(3).sum(), x)
        for i in range(2):
            alone = nn.BatchNorm2d(3, **options).double().train(training)
            xi = x[i].detach().requires_grad_()
            ref = alone(xi)
            assert torch.allclose(out[i], ref, rtol=1e-12, atol=1e-12)
            assert torch.allclose(gx[i], torch.autograd.grad(ref.pow(3).sum(), xi)[0], rtol=1e-10, atol=1e-12)


def test_members_beside_channels_are_normalised_where_the_convolution_left_them():
    """The folded batch norm reads the grouped convolution's output itself (same memory, nothing copied)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Recording(TorchDispatchMode):
        ops = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func is torch.ops.aten.convolution.default:
                self.ops.append(("convolution", out.data_ptr()))
            elif func is torch.ops.aten.native_batch_norm.default:
                self.ops.append(("batch norm", args[0].data_ptr()))
            elif func in (torch.ops.aten.clone.default, torch.ops.aten.copy_.default,
                          torch.ops.aten._to_copy.default):
                self.ops.append((str(func),))
            return out

    bn = BatchNorm2d(4)
    params, buffers = stacked([bn, BatchNorm2d(4), BatchNorm2d(4)])
    weights = torch.randn(3, 4, 2, 3, 3)
    x = members_beside_channels(torch.randn(3, 5, 2, 8, 8))
    with Recording():
        vmap(lambda w, p, b, xk: functional_call(bn, (p, b), (F.conv2d(xk, w, padding=1),)))(weights, params,
                                                                                             buffers, x)
    conv, normed, *after = Recording.ops
    assert conv[0] == "convolution" and normed == ("batch norm", conv[1]), Recording.ops


def test_nested_vmap():
    members = [pair(seed=i)[0] for i in range(3)]
    params, buffers = stacked(members)
    twice = lambda t: t.expand(2, *t.shape).clone()  # noqa: E731
    params, buffers = {n: twice(t) for n, t in params.items()}, {n: twice(t) for n, t in buffers.items()}
    x = torch.randn(2, 3, 5, 3, 4, 4, dtype=torch.float64)
    out = vmap(lambda p, b, xs: run_members(members[0], p, b, xs))(params, buffers, x)
    alone = nn.BatchNorm2d(3).double()
    alone.load_state_dict(members[2].state_dict())
    assert torch.allclose(out[1, 2], alone(x[1, 2]), rtol=1e-12)
    assert torch.allclose(buffers["running_var"][1, 2], alone.running_var, rtol=1e-12)


def test_an_ensemble_step_compiles_to_one_graph():
    members = [BatchNorm2d(4) for _ in range(3)]
    params, buffers = stacked(members)
    x = torch.randn(3, 5, 4, 6, 6)
    expected = run_members(members[0], params, {n: b.clone() for n, b in buffers.items()}, x)
    explained = torch._dynamo.explain(lambda p, b, xs: run_members(members[0], p, b, xs))(params, buffers, x)
    assert explained.graph_count == 1 and explained.graph_break_count == 0
    compiled = torch.compile(lambda p, b, xs: run_members(members[0], p, b, xs), backend="eager")
    assert torch.allclose(compiled(params, {n: b.clone() for n, b in buffers.items()}, x), expected, atol=1e-6)


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
