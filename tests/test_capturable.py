"""The CUDA training step, checked on a machine without a GPU.

A CUDA graph captures a step only if the step never waits for the device. ``hpnb.graphs.host_reads`` lists
the known ops that would; here every network's whole step (forward, backward, probe, optimizer) runs through it
on the CPU and on meta tensors, which have shapes but no data, so a read-back that a CPU run cannot see
(``.tolist()``, ``.cpu()``) fails there. The step takes the choices it takes on a GPU: channels-last batches
and torch's ELU and batch norm (the CPU-only rules are switched off).

The forward pass also runs on fake CUDA tensors (``FakeTensorMode``: devices, dtypes and strides without a GPU),
with and without bf16 autocast: a tensor left on the CPU, or autocast not reaching the vmapped layers, fails
here. torch's autograd engine needs a real GPU for a backward pass on CUDA tensors, so that part is meta only.
"""
import contextlib
import math

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from hpnb import RunConfig
from hpnb.batches import EpochDraws
from hpnb.data import load_data
from hpnb.graphs import host_reads
from hpnb.loop import build, training_batches
from hpnb.models import activations, batchnorm
from hpnb.models.ldlt import LDLTLinear
from hpnb.optim import build_optimizer
from hpnb.stack import ModelStack
from hpnb.step import TrainStep, autocast_for

from conftest import tiny_dict

IMAGES = {"name": "digits", "image_size": 16, "channels": 3, "augment": True, "crop_padding": 2, "flip": True}
VGG_IMAGES = {**IMAGES, "image_size": 32}  # five poolings
TABLE = {"name": "synthetic", "train_size": 300, "test_size": 100, "validation": "test"}
NETWORKS = {
    "mnist_cnn": tiny_dict(model={"name": "mnist_cnn", "double_softmax": True}, probes={"grad_norm": "conv.weight"}),
    "cifar_cnn": tiny_dict(batch_size=20, model={"name": "cifar_cnn"}, data=IMAGES),  # dropout masks as inputs
    "vgg19_bn": tiny_dict(model={"name": "vgg19", "width": 0.125, "batch_norm": True}, data=VGG_IMAGES),
    "vgg19": tiny_dict(model={"name": "vgg19", "width": 0.125, "batch_norm": False}, data=VGG_IMAGES,
                       optimizer={"name": "sgd", "lr": 0.01, "momentum": 0.9, "nesterov": True}),
    "resnet34": tiny_dict(model={"name": "resnet34", "width": 0.125}, data=IMAGES, optimizer={"name": "adam"}),
    "mobilenet": tiny_dict(model={"name": "mobilenet", "width": 0.25, "sigmoid_blocks": [1]}, data=IMAGES,
                           probes={"grad_norm": "layers.8.conv1.weight"}),
    "ldlt_mlp": {"data": TABLE, "model": {"name": "ldlt_mlp", "depth": 2, "width": 16}, "batch_size": 64,
                 "optimizer": {"name": "adamw", "lr": 2e-3}},
    "mlp": {"data": TABLE, "model": {"name": "mlp", "depth": 2, "width": 16}, "batch_size": 64,
            "optimizer": {"name": "adam", "lr": 1e-3}},
}
CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def cuda_choices(monkeypatch):
    """The ops the models pick on a GPU: torch's ELU and torch's batch norm (hpnb's own are CPU-only)."""
    monkeypatch.setattr(activations, "FROM_EXP_ON_CPU", False)
    monkeypatch.setattr(batchnorm, "FOLD_FROM", math.inf)


@contextlib.contextmanager
def step_on(device: str, raw: dict, members: int, amp: bool = False):
    """hpnb's training step for ``members`` runs of ``raw``, built on the CPU as the loop builds it, then moved to
    ``device`` ("meta", or fake "cuda"), with one batch in the layout hpnb uses on a GPU; yields (step, inputs)."""
    cfgs = [RunConfig.from_dict({**raw, "seed": seed, "amp": amp}) for seed in range(members)]
    data = load_data(cfgs[0].data, "cpu")
    batches = training_batches(cfgs[0], data, CUDA)  # CUDA's layout: channels-last images
    models = [build(cfg, data, torch.device("cpu")) for cfg in cfgs]
    if batches.channels_last:
        models = [m.to(memory_format=torch.channels_last) for m in models]
    stack = ModelStack(models)
    draws = batches.draw([torch.Generator().manual_seed(cfg.seed) for cfg in cfgs])
    noise = stack.noise(cfgs[0].batch_size, [torch.Generator().manual_seed(cfg.seed) for cfg in cfgs])
    target = torch.device(device)
    with FakeTensorMode(allow_non_fake_inputs=True) if device == "cuda" else contextlib.nullcontext():
        stack.params = {n: p.detach().to(target).requires_grad_() for n, p in stack.params.items()}
        stack.buffers = {n: b.to(target) for n, b in stack.buffers.items()}
        stack.device = target
        batches.data = batches.data.to(target)
        batches.mean, batches.std = (None if t is None else t.to(target) for t in (batches.mean, batches.std))
        draws = EpochDraws(*(None if t is None else t.to(target) for t in vars(draws).values()))
        noise = None if noise is None else {n: t.to(target) for n, t in noise.items()}
        optimizer = build_optimizer(cfgs[0].optimizer.name, stack.params, [c.optimizer.options for c in cfgs])
        step = TrainStep(stack, optimizer, amp, cfgs[0].probes.grad_norm)
        step.begin_epoch(len(batches))
        x, y = next(batches.batches(draws))
        rates = torch.full((members,), 0.01, dtype=torch.float64, device=target)
        active = torch.ones(members, dtype=torch.float64, device=target)
        yield step, (x, y, noise, rates, active)


@pytest.mark.parametrize("device", ["cpu", "meta"])  # each shows a different part (hpnb.graphs.host_reads)
@pytest.mark.parametrize("members", [1, 3])
@pytest.mark.parametrize("network", list(NETWORKS))
def test_every_networks_training_step_never_waits_for_the_device(network, members, device):
    with step_on(device, NETWORKS[network], members) as (step, inputs):
        step.optimizer.zero_grad()
        found = host_reads(step.body, *inputs)  # what a graph captures: forward, backward, probe, update
        assert found == {}, f"{network}: the step could not be captured in a CUDA graph: {found}"
        assert all(p.grad is not None and p.grad.device.type == device for p in step.stack.params.values())
        assert step.optimizer.steps.shape == (members,) and step.loss_sum.device.type == device
        if step.norms is not None:
            assert step.norms.shape == (len(step.norms), members)


@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "bf16"])
@pytest.mark.parametrize("network", list(NETWORKS))
def test_every_networks_forward_runs_on_cuda_tensors(network, amp, monkeypatch):
    with monkeypatch.context() as patch:  # torch.autocast("cuda") turns itself off without a GPU; its casts need none
        patch.setattr(torch.cuda, "is_available", lambda: True)
        patch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
        autocast = autocast_for(CUDA, amp)
    with step_on("cuda", NETWORKS[network], 2, amp=amp) as (step, (x, y, noise, _, _)):
        stack = step.stack
        assert x.device.type == "cuda" and x.dim() in (3, 5)
        if x.dim() == 5:  # (K, B, C, H, W) laid out as (B, H, W, K, C): members beside the channels
            assert x.permute(1, 3, 4, 0, 2).is_contiguous()
        with autocast, _dtypes_of_products() as dtypes:
            loss, correct = stack.losses(x, y, noise)
            stack.train(False)  # evaluation: every member on the same inputs
            logits = stack.logits(x[0])
        assert loss.device.type == "cuda" and loss.dtype == torch.float32 and loss.shape == (2,)
        assert correct.shape == (2,) and logits.shape[:2] == (2, x.shape[1])
        # bf16 autocast reaches the matrix products and convolutions inside vmap; LDLT normalises its weights
        # (a Gram matrix, a triangular solve) in float32 and applies them in bf16
        expected = {torch.bfloat16} if amp else {torch.float32}
        assert dtypes == (expected | {torch.float32} if network == "ldlt_mlp" else expected)


@contextlib.contextmanager
def _dtypes_of_products():
    """The output dtypes of every convolution and matrix product run inside the block."""
    from torch.utils._python_dispatch import TorchDispatchMode

    products = {"convolution", "mm", "addmm", "bmm", "linear", "matmul", "_convolution", "cudnn_convolution"}

    class Dtypes(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func.overloadpacket.__name__ in products and isinstance(out, torch.Tensor):
                seen.add(out.dtype)
            return out

    seen: set = set()
    with Dtypes():
        yield seen


def test_the_symmetric_ldlt_step_is_known_not_to_be_capturable():
    """eigh checks convergence on the host; this normalisation trains eagerly on a GPU (the model says so)."""
    raw = {**NETWORKS["ldlt_mlp"], "model": {"name": "ldlt_mlp", "depth": 2, "width": 16,
                                             "normalisation": "symmetric"}}
    with step_on("meta", raw, 2) as (step, inputs):
        assert set(host_reads(step.body, *inputs)) == {"_linalg_eigh"}


@pytest.mark.parametrize("case, expected", [
    (lambda x: x.sum().item(), "_local_scalar_dense"),
    (lambda x: x[0, 0] if bool(x.sum() > 0) else x, "_local_scalar_dense"),
    (lambda x: x[x > 0], "index with a boolean mask"),
    (lambda x: x.nonzero(), "nonzero"),
    (lambda x: torch.linalg.cholesky(x @ x.T + torch.eye(4)), "_linalg_check_errors"),
    (lambda x: torch.linalg.eigh(x @ x.T), "_linalg_eigh"),
    (lambda x: x * torch.tensor([1.0, 2.0, 3.0, 4.0]), "lift_fresh"),
    (lambda x: torch.repeat_interleave(torch.arange(3), torch.arange(3)), "repeat_interleave"),
])
def test_host_reads_names_what_stops_a_capture(case, expected):
    assert expected in host_reads(case, torch.randn(4, 4))


def test_host_reads_names_a_copy_from_the_host_on_meta_tensors():
    x = torch.randn(4, 4, device="meta")
    assert "_to_copy to another device" in host_reads(lambda: x * torch.arange(4.0).to(x.device))
    assert "copy_ to another device" in host_reads(lambda: x.clone().copy_(torch.ones(4, 4)))
    with pytest.raises(RuntimeError, match="meta"):  # a read-back has nothing to read
        host_reads(lambda: x.sum().item())


def test_host_reads_passes_a_step_that_stays_on_the_device():
    x = torch.randn(4, 4)
    assert host_reads(lambda: torch.linalg.cholesky_ex(x @ x.T + torch.eye(4, device=x.device))) == {}
    assert host_reads(lambda: torch.repeat_interleave(torch.arange(3), torch.arange(3), output_size=3)) == {}


def test_ldlt_cholesky_weight_is_the_one_torch_linalg_cholesky_gives():
    layer = LDLTLinear(12, 6, gamma=1.5, alpha=0.3)
    w0 = layer.weight0.detach()
    r = torch.linalg.cholesky(w0.T @ w0 + layer.alpha.detach() * torch.eye(12)).T
    expected = 1.5 * torch.linalg.solve_triangular(r, w0, upper=True, left=False)
    assert torch.equal(layer.weight().detach(), expected)


def test_a_failed_ldlt_factorisation_gives_nan_rather_than_an_error():
    """The loop marks a run whose loss is NaN as diverged; a raised error would have stopped its ensemble."""
    layer = LDLTLinear(6, 4)
    with torch.no_grad():
        layer.weight0.fill_(1e30)  # W0ᵀW0 overflows: no factorisation exists in float32
    weight = layer.weight()
    assert weight.shape == (4, 6) and torch.isnan(weight).all()
