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

from conftest import REPO, tiny_dict

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
