"""The fast paths on a CUDA GPU against the plain eager loop on the same seeds. Skipped without CUDA; run them
with ``make gpu-check`` on a GPU machine.

Tolerances: eager and graphed steps run the same kernels, so they agree to float32 rounding (rtol 1e-4 after
a few epochs); compiled steps fuse kernels and bf16 autocast rounds every matmul, so those are held to what
training itself can tell apart (a few points of accuracy, 5 % of the loss).
"""
import contextlib
import warnings

import numpy as np
import pytest
import torch

from hpnb import RunConfig, RunStore
from hpnb.runner import train
from hpnb.loop import fit, fit_members

from conftest import tiny_dict
from test_ensembles import same_history, strategy_runs

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run `make gpu-check`)")]


def on_cuda(cfg: dict, **execution) -> RunConfig:
    return RunConfig.from_dict({**cfg, "device": "cuda", "amp": False, "compile": False, "cuda_graphs": False,
                                **execution})


NETWORKS = {
    "mnist_cnn": tiny_dict(epochs=4, model={"name": "mnist_cnn", "double_softmax": True}),
    "cifar_cnn": tiny_dict(epochs=3, batch_size=20, model={"name": "cifar_cnn", "dropout_first_epoch_only": True},
                           data={"name": "digits", "image_size": 16, "channels": 3}),
    "ldlt_mlp": {"data": {"name": "synthetic", "train_size": 2000, "test_size": 500, "validation": "test"},
                 "model": {"name": "ldlt_mlp", "depth": 4, "width": 32}, "epochs": 3, "batch_size": 256,
                 "optimizer": {"name": "adamw", "lr": 2e-3}, "probes": {"cka": True, "roc_auc": True}},
    "resnet34": tiny_dict(epochs=2, model={"name": "resnet34", "width": 0.125}, optimizer={"name": "sgd",
                          "lr": 0.01, "momentum": 0.9}, data={"name": "digits", "image_size": 16, "channels": 3,
                                                              "augment": True, "crop_padding": 2}),
}


@contextlib.contextmanager
def from_graphs(what: str):
    """The training inside the block must replay captured graphs: at least one captured, no eager fallback."""
    from hpnb.graphs import GraphedStep

    captured, capture = [], GraphedStep._capture

    def counted(self, *args, **kwargs):
        capture(self, *args, **kwargs)
        captured.append(1)

    with warnings.catch_warnings(record=True) as caught, pytest.MonkeyPatch.context() as patch:
        warnings.simplefilter("always")
        patch.setattr(GraphedStep, "_capture", counted)
        yield
    fallbacks = [str(w.message) for w in caught if "CUDA graph capture failed" in str(w.message)]
    assert not fallbacks, f"{what} trained eagerly, not from a graph: {fallbacks}"
    assert captured, f"{what}: no CUDA graph was captured"


@pytest.mark.parametrize("network", list(NETWORKS))
def test_graphed_ensemble_equals_the_eager_ensemble(network):
    cfg = NETWORKS[network]
    eager = fit_members([on_cuda({**cfg, "seed": s}) for s in range(3)], progress=False)
    with from_graphs(network):
        graphed = fit_members([on_cuda({**cfg, "seed": s}, cuda_graphs=True) for s in range(3)], progress=False)
    for a, b in zip(eager, graphed):
        same_history(a.history, b.history, rtol=1e-4, atol=1e-5)


def test_every_chapter3_strategy_ends_the_same_in_a_graphed_cuda_ensemble():
    cfgs = strategy_runs()
    solo = [fit(on_cuda(c), progress=False) for c in cfgs]
    with from_graphs("the chapter-3 ensemble"):
        together = fit_members([on_cuda(c, cuda_graphs=True) for c in cfgs], progress=False)
    for a, b in zip(solo, together):
        same_history(a.history, b.history, rtol=1e-3, atol=1e-4)


def test_bf16_autocast_and_channels_last_train_as_well_as_fp32():
    cfg = NETWORKS["resnet34"]
    fp32 = fit(on_cuda(cfg), progress=False).history
    with from_graphs("resnet34 in bf16"):
        fast = fit(on_cuda(cfg, amp=True, channels_last=True, cuda_graphs=True), progress=False).history
    assert abs(fast.val_acc.iloc[-1] - fp32.val_acc.iloc[-1]) < 0.05
    np.testing.assert_allclose(fast.train_loss, fp32.train_loss, rtol=0.05)


def test_compiled_step_trains_like_the_eager_one():
    cfg = NETWORKS["mnist_cnn"]
    eager = fit(on_cuda(cfg), progress=False).history
    compiled = fit(on_cuda(cfg, compile=True), progress=False).history
    np.testing.assert_allclose(compiled.train_loss, eager.train_loss, rtol=0.05)
    assert abs(compiled.val_acc.iloc[-1] - eager.val_acc.iloc[-1]) < 0.05


def test_a_step_that_cannot_be_captured_falls_back_to_eager(monkeypatch):
    from hpnb import graphs

    def refuse(*args, **kwargs):
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(graphs.torch.cuda, "graph", refuse)
    cfg = NETWORKS["mnist_cnn"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fallback = fit(on_cuda(cfg, cuda_graphs=True), progress=False)
    assert any("CUDA graph capture failed" in str(w.message) for w in caught)
    same_history(fit(on_cuda(cfg), progress=False).history, fallback.history, rtol=1e-4, atol=1e-5)


def test_a_cuda_run_comes_back_from_the_store_exactly(tmp_path):
    store = RunStore(tmp_path / "runs")
    with from_graphs("mnist_cnn in bf16"):
        first = train(on_cuda(NETWORKS["mnist_cnn"], cuda_graphs=True, amp=True), store=store)
    second = train(on_cuda(NETWORKS["mnist_cnn"], cuda_graphs=True, amp=True), store=store)
    assert second.cached and second.history.equals(first.history) and second.summary == first.summary
