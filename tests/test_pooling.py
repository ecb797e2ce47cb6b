"""hpnb's max pooling is torch's, value for value and gradient for gradient, alone and inside an ensemble's
vmap, where it pools the members in the layout the convolution left them in."""
import pytest
import torch
import torch.nn.functional as F
from torch.func import grad, vmap

from hpnb.batches import members_beside_channels
from hpnb.models import pooling
from hpnb.models.pooling import max_pool2d

from conftest import ensemble_conv_case


def with_ties(*shape):
    """Small integers after a ReLU: many windows hold their maximum twice or more (zeros most of all)."""
    g = torch.Generator().manual_seed(0)
    return torch.randint(-3, 4, shape, generator=g).double().relu()


@pytest.mark.parametrize("shape,size", [((3, 4, 8, 8), 2), ((2, 3, 7, 9), 2), ((2, 2, 9, 9), 3)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_values_and_gradients_are_torchs(shape, size, channels_last):
    x = with_ties(*shape)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, ref = max_pool2d(ours, size), F.max_pool2d(theirs, size)
    assert out.shape == ref.shape and torch.equal(out, ref)
    g = torch.randn(ref.shape, dtype=ref.dtype)
    out.backward(g)
    ref.backward(g)
    assert torch.equal(ours.grad, theirs.grad)
    assert ours.grad.count_nonzero() == g.numel()  # ties: one winner per window, as in torch


def member_loss(pool):
    return lambda wk, xk: pool(F.relu(F.conv2d(xk, wk, padding=1)), 2).square().sum()


def stacked_step(pool, x, weights):
    """An ensemble's forward under vmap, with the backward outside it (as hpnb.stack does): every member's
    loss and the gradient of the stacked weights."""
    w = weights.clone().requires_grad_()
    loss = vmap(member_loss(pool))(w, x)
    loss.sum().backward()
    return loss.detach(), w.grad


@pytest.mark.parametrize("layout", ["members beside channels", "plain stack", "shared input"])
def test_in_an_ensemble_each_member_pools_as_it_would_alone(layout):
    k = 3
    weights, x = ensemble_conv_case(10, layout, k)
    in_dims = (0, None) if layout == "shared input" else (0, 0)
    if layout == "shared input":
        x = x[0]
    ours = vmap(lambda wk, xk: max_pool2d(F.conv2d(xk, wk, padding=1), 2), in_dims=in_dims)(weights, x)
    alone = torch.stack([F.max_pool2d(F.conv2d(x if layout == "shared input" else x[i], weights[i], padding=1), 2)
                         for i in range(k)])
    assert torch.allclose(ours, alone, rtol=1e-12, atol=0)
    if layout != "shared input":
        loss, w_grad = stacked_step(max_pool2d, x, weights)
        ref_loss, ref_grad = stacked_step(F.max_pool2d, x, weights)
        assert torch.allclose(loss, ref_loss, rtol=1e-12) and torch.allclose(w_grad, ref_grad, rtol=1e-12)
        # per-member gradients through torch.func as well (the backward's own vmap rule)
        per_member = vmap(grad(member_loss(max_pool2d)))(weights, x)
        assert torch.allclose(per_member, ref_grad, rtol=1e-12)


def test_an_ensemble_pools_the_convolutions_output_in_place():
    """With the members beside the channels, the pooling kernel reads the grouped convolution's channels-last
    output itself (same memory, nothing copied in between), where torch's rule copies it into (K·B, C, H, W)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Recording(TorchDispatchMode):  # sees the physical ops vmap's rules issue
        ops = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func is torch.ops.aten.convolution.default:
                self.ops.append(("convolution", out.data_ptr(), tuple(out.shape)))
            elif func is torch.ops.aten.max_pool2d_with_indices.default:
                channels_last = args[0].is_contiguous(memory_format=torch.channels_last)
                self.ops.append(("pool", args[0].data_ptr(), tuple(args[0].shape), channels_last))
            elif func in (torch.ops.aten.clone.default, torch.ops.aten.copy_.default, torch.ops.aten._to_copy.default):
                self.ops.append((str(func),))
            return out

    k, b = 3, 5
    weights = torch.randn(k, 4, 2, 3, 3)
    x = members_beside_channels(torch.randn(k, b, 2, 8, 8))
    for pool, expected in ((max_pool2d, "in place"), (F.max_pool2d, "copied")):
        Recording.ops = []
        with Recording():
            vmap(lambda wk, xk: pool(F.conv2d(xk, wk, padding=1), 2))(weights, x)
        conv, *between, pooled = Recording.ops
        assert conv[0] == "convolution" and pooled[0] == "pool" and conv[2] == (b, k * 4, 8, 8)
        in_place = conv[1] == pooled[1] and not between
        assert in_place == (expected == "in place"), Recording.ops
        if in_place:
            assert pooled[2:] == ((b, k * 4, 8, 8), True)


def test_under_vmap_ties_go_where_torch_sends_them():
    """Pooling alone under vmap, with many tied maxima: each member's values and input gradients equal
    F.max_pool2d's on that member, bit for bit."""
    x = members_beside_channels(with_ties(3, 4, 2, 8, 9))
    ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = vmap(lambda t: max_pool2d(t, 2))(ours)
    ref = torch.stack([F.max_pool2d(theirs[i], 2) for i in range(3)])
    assert torch.equal(out, ref)
    g = torch.randn(ref.shape, dtype=ref.dtype)
    out.backward(g)
    ref.backward(g)
    assert torch.equal(ours.grad, theirs.grad)


def test_second_derivatives_are_torchs():
    """Through the pooling twice (a Hessian-vector product), as with F.max_pool2d."""
    x = with_ties(2, 3, 7, 9)
    direction = torch.randn(x.shape, dtype=x.dtype)
    products = []
    for pool in (max_pool2d, F.max_pool2d):
        a = x.clone().requires_grad_()
        gx, = torch.autograd.grad((pool(a, 2) ** 3).sum(), a, create_graph=True)
        products.append(torch.autograd.grad((gx * direction).sum(), a)[0])
    assert products[0].abs().sum() > 0 and torch.equal(*products)


def test_members_beside_channels_keeps_the_values_and_each_members_batch_channels_last():
    x = torch.randn(3, 5, 2, 4, 6)
    laid_out = members_beside_channels(x)
    assert torch.equal(laid_out, x)
    assert laid_out.permute(1, 3, 4, 0, 2).is_contiguous()  # (B, H, W, K, C) in memory
    assert all(laid_out[k].stride(1) == 1 for k in range(3))  # channels innermost in each member's batch
    assert members_beside_channels(x[:1])[0].is_contiguous(memory_format=torch.channels_last)  # one member


def test_pooling_takes_images_only():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        max_pool2d(torch.zeros(2, 8, 8), 2)
