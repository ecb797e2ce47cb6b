"""Runs trained together as an ensemble end as they would alone: same histories and weights (to float
rounding), same hashes in the store; a killed ensemble resumes; one member's divergence touches no other."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from hpnb import RunConfig, RunStore
from hpnb.ensembles import HARD_CAP, group, member_bytes, member_cap
from hpnb.runner import train, train_runs
from hpnb.loop import ensemble_key, fit, fit_members

from conftest import REPO, tiny_dict

TIMING = ["seconds", "samples_per_sec"]


def same_history(a: pd.DataFrame, b: pd.DataFrame, rtol=2e-4, atol=2e-5):
    a, b = a.drop(columns=TIMING), b.drop(columns=TIMING)
    assert list(a.columns) == list(b.columns)
    assert a["epoch"].tolist() == b["epoch"].tolist()
    np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=rtol, atol=atol)


def solo_and_together(cfgs):
    cfgs = [RunConfig.from_dict(c) for c in cfgs]
    assert len({ensemble_key(c) for c in cfgs}) == 1
    return [fit(c, progress=False) for c in cfgs], fit_members(cfgs, progress=False)


def strategy_runs():
    """Chapter 3's strategies, with settings that make cutoff and oscillation fire at different epochs."""
    base = tiny_dict(epochs=8, model={"name": "mnist_cnn", "double_softmax": True}, data={
        "name": "digits", "image_size": 12, "channels": 1, "validation": "test", "mean": [0.5], "std": [0.5]})
    points = [("epoch", "seq1", {}), ("epoch", "seq4", {}), ("cutoff", "seq2", {"cutoff_fraction": 0.05}),
              ("cutoff", "seq3", {"cutoff_fraction": 0.3}), ("oscillation", "seq3", {"zero_padded_history": True}),
              ("oscillation", "seq2", {"zero_padded_history": False})]
    cfgs = [{**base, "seed": i % 2, "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
             "strategy": {"name": name, "sequence": seq, **opts}} for i, (name, seq, opts) in enumerate(points)]
    cfgs.append({**base, "optimizer": {"name": "sgd", "lr": 0.001, "momentum": 0.9}})  # the SGD benchmark
    return cfgs


def test_every_chapter3_strategy_ends_the_same_in_an_ensemble():
    solo, together = solo_and_together(strategy_runs())
    updates = []
    for a, b in zip(solo, together):
        same_history(a.history, b.history)
        lr = a.history["lr"].to_numpy()
        updates.append(tuple(np.flatnonzero(np.diff(lr) != 0)))
    assert len(set(updates)) >= 5, updates  # the members change their rates at different epochs


def test_dropout_masks_follow_each_run_in_an_ensemble():
    base = tiny_dict(epochs=3, batch_size=20, model={"name": "cifar_cnn"},
                     data={"name": "digits", "image_size": 8, "channels": 3, "train_size": 300})
    cfgs = [{**base, "seed": 0}, {**base, "seed": 1},
            {**base, "seed": 0, "model": {"name": "cifar_cnn", "dropout_first_epoch_only": True}}]
    solo, together = solo_and_together(cfgs[:2])
    for a, b in zip(solo, together):
        same_history(a.history, b.history)
    assert not np.allclose(solo[0].history.train_loss, solo[1].history.train_loss)


@pytest.fixture
def float64():
    """Train in float64. On tiny batch-norm networks float32 rounding differences (grouped vs plain
    convolutions) grow chaotically within an epoch, hiding whether two paths compute the same thing; in
    float64 they must agree to many digits."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def test_batch_norm_schedules_and_per_batch_rates_in_one_ensemble(float64):
    """Chapter 1's tournament in miniature: five schedules (one stepped per batch) with Adam on a ResNet
    with batch norm, and the per-step gradient-norm probe."""
    base = tiny_dict(epochs=3, batch_size=50, model={"name": "resnet34", "width": 0.0625},
                     data={"name": "digits", "image_size": 8, "channels": 3, "augment": True, "crop_padding": 1,
                           "train_size": 300},
                     optimizer={"name": "adam", "lr": 1e-3}, init="kaiming_uniform",
                     probes={"grad_norm": "layer4.0.conv1.weight"})
    schedules = [{"name": "constant"}, {"name": "exponential", "gamma": 0.5},
                 {"name": "multistep", "milestones": [1, 2], "gamma": 0.1},
                 {"name": "cyclic", "base_lr": 1e-4, "max_lr": 1e-3, "step_size_up_epochs": 0.5},
                 {"name": "cosine_warm_restarts", "T_0": 1, "T_mult": 2}]
    solo, together = solo_and_together([{**base, "schedule": s} for s in schedules])
    for a, b in zip(solo, together):
        same_history(a.history, b.history, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(a.grad_norms.grad_norm, b.grad_norms.grad_norm, rtol=1e-6)
    assert len({tuple(r.history.lr) for r in together}) == 5


def test_a_chapter4_grid_with_every_probe_ends_the_same():
    base = {"data": {"name": "synthetic", "train_size": 600, "test_size": 300, "validation": "test"},
            "model": {"name": "ldlt_mlp", "depth": 3, "width": 16}, "epochs": 3, "batch_size": 128,
            "optimizer": {"name": "adamw", "lr": 2e-3, "weight_decay": 0.01}, "device": "cpu",
            "probes": {"activation_variance": True, "cka": True, "roc_auc": True}}
    inits = [{"name": "kaiming_normal"}, {"name": "scaled_normal", "scale": 1.0}, {"name": "scaled_normal", "scale": 10.0}]
    solo, together = solo_and_together([{**base, "init": i, "seed": s} for i in inits for s in (0, 1)])
    for a, b in zip(solo, together):
        same_history(a.history, b.history)
        assert {"test_auc", "cka"} <= set(b.history.columns)
        np.testing.assert_allclose(a.activations.variance, b.activations.variance, rtol=1e-4)
        assert a.summary["cka_init"] == pytest.approx(b.summary["cka_init"], rel=1e-6)


def test_one_diverging_member_leaves_the_others_untouched():
    cfgs = [tiny_dict(epochs=4), tiny_dict(epochs=4, optimizer={"name": "sgd", "lr": 1e9}), tiny_dict(epochs=4, seed=1)]
    solo, together = solo_and_together(cfgs)
    assert together[1].status == "diverged" and together[1].summary["diverged_at"] == solo[1].summary["diverged_at"]
    for i in (0, 2):
        assert together[i].status == "finished"
        same_history(solo[i].history, together[i].history)


def test_members_are_stored_under_their_solo_hashes(store, tmp_path):
    cfgs = [RunConfig.from_dict(c) for c in strategy_runs()[:4]]
    outcomes = train_runs(cfgs, store=store, progress=False)
    assert all(o.run.summary["ensemble_size"] == 4 for o in outcomes)
    assert sorted(store.list_runs().hash) == sorted(c.hash for c in cfgs)
    for cfg, outcome in zip(cfgs, outcomes):
        cached = train(cfg, store=store)  # the run alone finds its ensemble-trained result
        assert cached.cached and cached.history.equals(outcome.run.history)
        alone = train(cfg, store=RunStore(tmp_path / "alone"))
        same_history(alone.history, cached.history)
        weights = [s.load_checkpoint(cfg).model for s in (store, RunStore(tmp_path / "alone"))]
        for name in weights[0]:
            torch.testing.assert_close(weights[0][name], weights[1][name], rtol=1e-3, atol=1e-4)


def test_grouping_splits_by_kind_and_caps_evenly():
    a = [RunConfig.from_dict(tiny_dict(seed=s)) for s in range(10)]
    b = [RunConfig.from_dict(tiny_dict(seed=s, batch_size=32)) for s in range(3)]
    caps = {ensemble_key(a[0]): 8, ensemble_key(b[0]): 8}
    assert group(a + b, caps) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 12]]
    assert group(a[:3], None) == [[0], [1], [2]]  # no cap known: one at a time


MLP_RUN = {"data": {"name": "synthetic", "train_size": 300, "test_size": 100, "validation": "test"},
           "model": {"name": "mlp", "depth": 2, "width": 16}, "batch_size": 64}


def test_member_bytes_counts_weights_gradients_moments_and_activations():
    # 28 → 16 → 16 → 2: 770 parameters, 16 bytes each (weight, gradient, two optimizer moments); the leaf
    # layers' outputs per sample, 16 + 16 + 16 + 16 + 2 floats, kept for a batch of 64 and counted twice
    cfg = RunConfig.from_dict(MLP_RUN)
    assert member_bytes(cfg, (28,), 2) == 16 * 770 + 2 * 4 * 64 * (16 + 16 + 16 + 16 + 2)


def test_member_cap_fills_half_the_free_cuda_memory(monkeypatch):
    cfg = RunConfig.from_dict(MLP_RUN)
    per_member, cuda = member_bytes(cfg, (28,), 2), torch.device("cuda")
    free = {"bytes": 0}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free["bytes"], 80 << 30))
    monkeypatch.delenv("HPNB_MAX_MEMBERS", raising=False)
    free["bytes"] = 21 * per_member
    assert member_cap(cfg, (28,), 2, cuda) == 10  # ⌊0.5 · 21⌋
    assert member_cap(cfg, (28,), 2, cuda, limit=3) == 3
    free["bytes"] = per_member
    assert member_cap(cfg, (28,), 2, cuda) == 1  # never none
    free["bytes"] = 1000 * per_member
    assert member_cap(cfg, (28,), 2, cuda) == HARD_CAP
    monkeypatch.setenv("HPNB_MAX_MEMBERS", "1")
    assert member_cap(cfg, (28,), 2, cuda) == 1
    # planning for another machine's GPUs: the given memory, not this machine's
    monkeypatch.delenv("HPNB_MAX_MEMBERS")
    assert member_cap(cfg, (28,), 2, torch.device("cpu"), memory=40 * per_member) == 20


KILL_SCRIPT = """
import sys, conftest
from hpnb import RunConfig
from hpnb.runner import train_runs
cfgs = [RunConfig.from_dict(c) for c in conftest.SLOW_ENSEMBLE]
train_runs(cfgs, store=sys.argv[1], progress=False)
"""


def test_a_killed_ensemble_resumes_to_the_uninterrupted_result(tmp_path):
    from conftest import SLOW_ENSEMBLE

    cfgs = [RunConfig.from_dict(c) for c in SLOW_ENSEMBLE]
    killed = RunStore(tmp_path / "killed")
    env = {**os.environ, "HPNB_PROGRESS": "0", "PYTHONPATH": f"{REPO / 'tests'}:{REPO}"}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(killed.root)], cwd=REPO, env=env)
    deadline, epochs = time.time() + 120, []
    while time.time() < deadline and proc.poll() is None:
        states = [killed.load_checkpoint(c, quarantine=False) for c in cfgs]
        epochs = [s.epoch if s is not None else 0 for s in states]
        if min(epochs) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 2 <= min(epochs) and max(epochs) < cfgs[0].epochs, f"not caught mid-way: {epochs}"
    resumed = train_runs(cfgs, store=killed, progress=False)
    clean = train_runs(cfgs, store=tmp_path / "clean", progress=False)
    for r, c, cfg in zip(resumed, clean, cfgs):
        assert not r.cached
        assert r.run.history.drop(columns=TIMING).equals(c.run.history.drop(columns=TIMING))
        final = [s.load_checkpoint(cfg).model for s in (killed, RunStore(tmp_path / "clean"))]
        assert all(torch.equal(final[0][k], final[1][k]) for k in final[0])


@pytest.mark.slow
def test_a_compiled_ensemble_step_trains_like_the_eager_one():
    """torch.compile of the stacked step (vmap over functional_call) works on a CPU too; ~30 s to compile."""
    eager = fit_members([RunConfig.from_dict(tiny_dict(epochs=2, seed=s)) for s in range(2)], progress=False)
    compiled = fit_members([RunConfig.from_dict(tiny_dict(epochs=2, seed=s, compile=True)) for s in range(2)],
                           progress=False)
    for a, b in zip(eager, compiled):
        same_history(a.history, b.history, rtol=1e-5, atol=1e-6)


def test_compiled_steps_keep_one_inductor_cache_per_cpu_kernel_set(monkeypatch):
    """inductor's cache key leaves out the kernel set: a step cached under AVX2 aborted under AVX-512."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    from hpnb import step

    monkeypatch.setattr(step.torch, "compile", lambda fn: fn)  # only the cache choice is under test
    default = os.path.abspath(default_cache_dir())
    for unset in (None, default):  # never set, or set to its default by importing torch._dynamo
        dirs = {}
        for kernels in ("AVX2", "AVX512"):
            if unset is None:
                monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
            else:
                monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", unset)
            monkeypatch.setattr(step.torch.backends.cpu, "get_cpu_capability", lambda: kernels)
            assert step.compiled(len) is len
            dirs[kernels] = os.environ["TORCHINDUCTOR_CACHE_DIR"]
        assert dirs == {"AVX2": default + "_avx2", "AVX512": default + "_avx512"}
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/chosen/by/the/user")
    step.compiled(len)
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == "/chosen/by/the/user"


def test_an_ensemble_shares_one_evaluation_batch_between_its_members(monkeypatch):
    """eval_batch_size counts the samples of one pass over all members: 4 members evaluating batches of 100
    see 25 samples each per pass, and still report what each run reports alone."""
    from hpnb import batches, loop

    assert [batches.member_eval_batch(1024, k) for k in (1, 12, 26, 2048)] == [1024, 86, 40, 1]
    seen = []

    class Recording(batches.EvalBatches):
        def __iter__(self):
            for x, y in super().__iter__():
                seen.append(len(x))
                yield x, y

    monkeypatch.setattr(loop, "EvalBatches", Recording)
    cfgs = [tiny_dict(epochs=1, seed=s, eval_batch_size=100) for s in range(4)]
    solo, together = solo_and_together(cfgs)
    for a, b in zip(solo, together):
        same_history(a.history, b.history)
    assert max(seen) == 100 and 25 in seen  # solo passes of 100, ensemble passes of 4 × 25
    assert max(seen[-8:]) == 25


CONV_NETS_CHANNELS_LAST = {  # model, image side (VGG-19 pools five times)
    "mobilenet": ({"name": "mobilenet", "width": 0.125}, 16),
    "vgg19": ({"name": "vgg19", "width": 0.0625}, 32),
    "mnist_cnn": ({"name": "mnist_cnn"}, 16),
    "cifar_cnn": ({"name": "cifar_cnn"}, 16),
}


@pytest.mark.parametrize("net", CONV_NETS_CHANNELS_LAST)
def test_conv_nets_train_channels_last_on_a_cpu_to_the_same_result(monkeypatch, float64, net):
    """channels_last is an execution setting (outside the hash): on a CPU these networks' batches go
    channels-last with the members beside the channels, ResNet-34 stays NCHW, and either way an ensemble ends
    where it would in NCHW (float64: see the fixture)."""
    from hpnb import batches, loop
    from hpnb.data import load_data

    # One epoch: 180 training samples in 5 batches of 36, then evaluation. Further on, MobileNet's tiny batch-norm
    # layers amplify the layouts' 1e-14 rounding differences ~100x per step even in float64.
    model, side = CONV_NETS_CHANNELS_LAST[net]
    raw = tiny_dict(epochs=1, model=model, batch_size=36, optimizer={"name": "sgd", "lr": 0.001, "momentum": 0.9},
                    data={"name": "digits", "image_size": side, "channels": 3, "val_size": 0.1, "train_size": 200})
    cfgs = [RunConfig.from_dict({**raw, "seed": s}) for s in (0, 1)]
    data = load_data(cfgs[0].data)
    cpu = torch.device("cpu")
    assert loop.uses_channels_last(cfgs[0], data, cpu)
    assert not loop.uses_channels_last(cfgs[0].replace(channels_last=False), data, cpu)
    resnet = RunConfig.from_dict({**raw, "model": {"name": "resnet34", "width": 0.0625}})
    assert not loop.uses_channels_last(resnet, data, cpu)

    layouts = []
    real_batches = batches.TrainBatches.batches

    def recording(self, draws):
        for x, y in real_batches(self, draws):  # (K, B, C, H, W): each member's batch
            beside = x.permute(1, 3, 4, 0, 2).is_contiguous()  # (B, H, W, K, C) in memory
            layouts.append("members beside channels" if beside else "NCHW" if x.is_contiguous() else "other")
            yield x, y

    monkeypatch.setattr(batches.TrainBatches, "batches", recording)
    fast = loop.fit_members(cfgs, progress=False)
    assert set(layouts) == {"members beside channels"}
    layouts.clear()
    plain = loop.fit_members([c.replace(channels_last=False) for c in cfgs], progress=False)
    assert set(layouts) == {"NCHW"}
    for a, b in zip(fast, plain):
        assert a.config.hash == b.config.hash
        same_history(a.history, b.history, rtol=1e-6, atol=1e-9)
