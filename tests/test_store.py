import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from hpnb import RunConfig, RunStore, train
from hpnb import runner

from conftest import REPO, fault_case, tiny_dict

TIMING = ["seconds", "samples_per_sec"]


def test_finished_run_is_a_cache_hit(store):
    first = train(tiny_dict(), store=store)
    second = train(tiny_dict(), store=store)
    assert not first.cached and second.cached
    assert second.history.drop(columns=TIMING).equals(first.history.drop(columns=TIMING))
    assert second.summary == first.summary
    assert sorted(p.name for p in first.path.iterdir()) == [
        "checkpoint.pt", "config.json", "history.csv", "manifest.json", "summary.json"]


@pytest.mark.parametrize("victim", ["history.csv", "summary.json", "config.json", "manifest.json"])
def test_damaged_files_are_detected_quarantined_and_redone(store, victim):
    run = train(tiny_dict(), store=store)
    path = run.path / victim
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # truncated
    redone = train(tiny_dict(), store=store)
    assert not redone.cached
    kept = list((store.root / ".quarantine").iterdir())
    assert len(kept) == 1 and (kept[0] / "QUARANTINED.txt").exists()  # moved aside, not deleted
    assert train(tiny_dict(), store=store).cached


def test_corrupt_checkpoint_of_an_unfinished_run_restarts_it(store):
    cfg = RunConfig.from_dict(tiny_dict())
    run = train(cfg, store=store)
    manifest = json.loads((run.path / "manifest.json").read_text())
    del manifest["summary.json"]  # make it look unfinished
    (run.path / "manifest.json").write_text(json.dumps(manifest))
    blob = (run.path / "checkpoint.pt").read_bytes()
    (run.path / "checkpoint.pt").write_bytes(blob[: len(blob) - 100])  # truncated
    assert store.load_checkpoint(cfg) is None
    assert (store.root / ".quarantine").exists()
    assert train(cfg, store=store).summary["status"] == "finished"


SLOW = tiny_dict(model={"name": "cifar_cnn"}, data={"name": "digits", "image_size": 32, "channels": 3},
                 batch_size=8, epochs=6, optimizer={"name": "sgd", "lr": 0.01, "momentum": 0.9})
SLOW["data"]["augment"] = True  # the device generator's state must survive the kill too


def test_resume_after_sigkill_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    cfg = RunConfig.from_dict(SLOW)
    killed_store = RunStore(tmp_path / "killed")
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(SLOW))
    proc = subprocess.Popen([sys.executable, "-m", "hpnb.cli", "train", str(tmp_path / "run.yaml"),
                             "--store", str(killed_store.root)], cwd=REPO,
                            env={**os.environ, "HPNB_PROGRESS": "0"})
    deadline = time.time() + 120
    state = None
    while time.time() < deadline and proc.poll() is None:
        state = killed_store.load_checkpoint(cfg, quarantine=False)  # no lock held here: only look
        if state is not None and state.epoch >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert state is not None and 2 <= state.epoch < cfg.epochs, "the run was not caught mid-way"
    assert killed_store.load(cfg) is None  # not finished

    resumed_from = []
    real_fit = runner.fit_members
    monkeypatch.setattr(runner, "fit_members", lambda cfgs, resumes, *a, **kw: resumed_from.append(
        resumes[0] and resumes[0].epoch) or real_fit(cfgs, resumes, *a, **kw))
    resumed = train(cfg, store=killed_store)
    assert resumed_from and resumed_from[0] >= 2
    clean = train(cfg, store=RunStore(tmp_path / "clean"))
    assert resumed.history.drop(columns=TIMING).equals(clean.history.drop(columns=TIMING))
    final = [s.load_checkpoint(cfg).model for s in (killed_store, RunStore(tmp_path / "clean"))]
    assert all(torch.equal(final[0][k], final[1][k]) for k in final[0])


SWEEP_SCRIPT = """
import sys, json, hpnb, conftest
df = hpnb.sweep(conftest.tiny_dict(epochs=4), {"optimizer.lr": [0.01, 0.02, 0.05, 0.1]}, seeds=[0],
                store=sys.argv[1], progress=False)
print(json.dumps({"trained": df.attrs["trained"], "cached": df.attrs["cached"],
                  "status": sorted(set(df.status))}))
"""


def test_two_processes_on_one_sweep_train_each_run_once(tmp_path):
    env = {**os.environ, "HPNB_PROGRESS": "0", "PYTHONPATH": str(REPO / "tests")}
    procs = [subprocess.Popen([sys.executable, "-c", SWEEP_SCRIPT, str(tmp_path / "runs")], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    results = [json.loads(p.communicate(timeout=300)[0].strip().splitlines()[-1]) for p in procs]
    assert sum(r["trained"] for r in results) == 4
    assert all(r["trained"] + r["cached"] == 4 and r["status"] == ["finished"] for r in results)
    assert len(RunStore(tmp_path / "runs").list_runs()) == 4


# ----------------------------------------------------------------------------- exact round trip
import math  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from hpnb.store import StoreError, read_table, table_bytes  # noqa: E402


def _bits(frame: pd.DataFrame) -> dict:
    return {c: (frame[c].to_numpy().view(np.int64).tolist() if frame[c].dtype == np.float64 else frame[c].tolist())
            for c in frame}


@fault_case("store round trip (bit for bit)")
def test_tables_round_trip_bit_for_bit():
    hard = [0.1 + 0.2, 1 / 3, 2.0**-1074, 1e308, -0.0, math.nan, math.inf, -math.inf, 2.2250738585072014e-308,
            5e-324, 1.7976931348623157e308, 0.30000000000000004, 123456789.12345679, -1.5e-7]
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 2**63, 4000, dtype=np.int64).view(np.float64)  # random bit patterns: every exponent
    noise = noise[np.isfinite(noise)][: 2000]
    n = len(hard)
    frame = pd.DataFrame({"epoch": np.arange(n, dtype=np.int64), "value": hard, "layer": [f"layers.{i}" for i in range(n)],
                          "flag": [i % 2 == 0 for i in range(n)], "all_nan": [math.nan] * n})
    for original in (frame, pd.DataFrame({"x": noise, "loss": rng.random(len(noise)) * 3})):
        back = read_table(table_bytes(original))
        assert list(back.dtypes) == list(original.dtypes) and list(back.columns) == list(original.columns)
        assert _bits(back) == _bits(original)  # every bit: -0.0 stays negative, NaN stays NaN
    with pytest.raises(ValueError):
        read_table(b"a,b\n1\n")


@fault_case("store round trip (bit for bit)")
def test_a_cached_run_is_the_fresh_run_bit_for_bit(store):
    probed = tiny_dict(epochs=2, probes={"grad_norm": "conv.weight", "activation_variance": True})
    fresh, cached = train(probed, store=store), train(probed, store=store)
    assert cached.cached
    for a, b in ((fresh.history, cached.history), (fresh.grad_norms, cached.grad_norms),
                 (fresh.activations, cached.activations)):
        assert list(a.dtypes) == list(b.dtypes) and _bits(a) == _bits(b)  # timing columns included


# ----------------------------------------------------------------------------- locks, partial writes, errors
def test_the_lock_file_goes_with_its_holder(store):
    cfg = RunConfig.from_dict(tiny_dict())
    with store.lock(cfg) as held:
        assert held and store.lock_path(cfg).exists()
        with store.lock(cfg, wait=False) as second:
            assert second is False  # flock is per open file: a second open in one process is refused too
    assert not store.lock_path(cfg).exists()


WAITER = """
import sys, time, hpnb, conftest
store = hpnb.RunStore(sys.argv[1])
cfg = hpnb.RunConfig.from_dict(conftest.tiny_dict())
print("waiting", flush=True)
with store.lock(cfg) as held:
    print("held", held, store.lock_path(cfg).exists(), flush=True)
"""


def test_a_waiter_gets_the_lock_after_the_holder_removed_the_file(store):
    cfg = RunConfig.from_dict(tiny_dict())
    env = {**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'tests'}"}
    with store.lock(cfg):
        waiter = subprocess.Popen([sys.executable, "-c", WAITER, str(store.root)], stdout=subprocess.PIPE, text=True,
                                  env=env)
        assert waiter.stdout.readline() == "waiting\n"
        time.sleep(0.5)  # let it block on the file this process is about to remove
    # it was waiting on the removed file: it must notice and lock the path's new file, not the old one
    assert waiter.communicate(timeout=60)[0] == "held True True\n"
    assert not store.lock_path(cfg).exists()


def test_partial_writes_of_killed_processes_are_removed_under_the_lock(store):
    run = train(tiny_dict(epochs=1), store=store)
    stale = [run.path / ".checkpoint.pt.4242.tmp", run.path / ".manifest.json.4243.tmp"]
    for p in stale:
        p.write_bytes(b"partial")
    with store.lock(run.config):
        assert sorted(store.clean_partial_writes(run.config)) == sorted(stale)
    assert not any(p.exists() for p in stale) and store.load(run.config) is not None


def test_an_unwritable_store_raises_store_error_naming_it(tmp_path):
    (tmp_path / "not_a_folder").write_text("")
    store = RunStore(tmp_path / "not_a_folder" / "runs")
    with pytest.raises(StoreError) as err:
        train(tiny_dict(), store=store)
    assert str(err.value).startswith(f"cannot write to the run store {store.root}: Not a directory")
    assert isinstance(err.value, OSError)


def test_runs_verify_reports_a_damaged_file(store):
    run = train(tiny_dict(epochs=1), store=store)
    assert store.list_runs(verify=True).status.tolist() == ["finished"]
    (run.path / "history.csv").write_text("epoch\n1\n")
    assert store.list_runs().status.tolist() == ["finished"]  # listing alone reads no checksum
    assert store.list_runs(verify=True).status.tolist() == ["damaged: history.csv is missing or does not match "
                                                            "its checksum"]
