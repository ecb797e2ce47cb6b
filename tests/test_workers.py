"""CPU worker processes (hpnb.workers): the runs they train equal the runs one process trains, a worker killed
mid-ensemble fails only its ensemble and the next call resumes it, an interrupt leaves no process behind, and a
bad worker count is refused before any work. The rest of the suite trains in-process (HPNB_CPU_WORKERS=1)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from hpnb import ConfigError, RunConfig, RunStore
from hpnb import workers as workers_module
from hpnb.runner import train_runs

from conftest import tiny_dict

TIMING = ["seconds", "samples_per_sec"]


@pytest.fixture
def started(monkeypatch):
    """Every worker the parent starts, in order."""
    made = []
    original = workers_module._Worker.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(workers_module._Worker, "__init__", spy)
    return made


def grid(epochs: int = 2) -> list[RunConfig]:
    """Three ensembles under a cap of 2 members: two of one kind (4 runs), one of another (batch 32)."""
    cfgs = [RunConfig.from_dict(tiny_dict(epochs=epochs, seed=s, optimizer__lr=lr)) for s in (0, 1)
            for lr in (0.05, 0.1)]
    return cfgs + [RunConfig.from_dict(tiny_dict(epochs=epochs, seed=s, batch_size=32)) for s in (0, 1)]


def assert_same_runs(a, b) -> None:
    assert a.config.hash == b.config.hash and a.status == b.status == "finished"
    ha, hb = a.history.drop(columns=TIMING), b.history.drop(columns=TIMING)
    assert list(ha.columns) == list(hb.columns) and len(ha) == len(hb) == a.config.epochs
    np.testing.assert_allclose(ha.to_numpy(float), hb.to_numpy(float), rtol=1e-5, atol=1e-6)


def test_workers_train_what_one_process_trains(tmp_path, started):
    cfgs = grid()
    alone = train_runs(cfgs, RunStore(tmp_path / "alone"), workers=1, max_members=2)
    assert not started
    seen = []
    side_by_side = train_runs(cfgs, RunStore(tmp_path / "workers"), workers=2, max_members=2, on_outcome=seen.append)
    assert len(started) == 2 and all(w.process.returncode == 0 for w in started)  # both used, both ended cleanly
    assert sorted(o.config.hash for o in seen) == sorted(c.hash for c in cfgs)
    for a, b in zip(alone, side_by_side):
        assert b.error is None and not b.cached and b.run.path.parent == tmp_path / "workers"
        assert_same_runs(a.run, b.run)
    again = train_runs(cfgs, RunStore(tmp_path / "workers"), workers=2, max_members=2)
    assert all(o.cached for o in again) and len(started) == 2  # nothing left to train: no worker started


def test_without_a_store_or_with_one_ensemble_training_stays_in_this_process(tmp_path, started):
    cfgs = grid(epochs=1)
    assert all(o.error is None for o in train_runs(cfgs, None, workers=2, max_members=2))
    assert all(o.error is None for o in train_runs(cfgs[:2], tmp_path, workers=2, max_members=2))
    assert not started


def test_a_killed_worker_fails_its_ensemble_and_the_next_call_resumes_it(tmp_path, started):
    cfgs = grid(epochs=6)
    store = RunStore(tmp_path / "store")
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault(
        "outcomes", train_runs(cfgs, store, workers=2, max_members=2)))
    thread.start()
    deadline = time.monotonic() + 120
    victim = None
    while victim is None and time.monotonic() < deadline:  # a worker with a checkpoint saved, mid-ensemble
        for worker in list(started):
            held = worker.args[0] if worker.args else []  # the configs of the ensemble it trains
            if held and any(store.load_checkpoint(cfg) is not None for cfg in held) and \
                    not any(store.load(cfg, quarantine=False) for cfg in held):
                victim = worker, [cfg.hash for cfg in held]
                break
        time.sleep(0.05)
    assert victim is not None, "no worker reached a checkpoint"
    with store.lock(cfgs[0], wait=False) as free:  # the parent holds every run's lock while workers train
        assert not free
    victim[0].process.kill()
    thread.join(180)
    outcomes = {o.config.hash: o for o in result["outcomes"]}
    for run_hash, outcome in outcomes.items():
        if run_hash in victim[1]:
            assert outcome.error == ("ensemble of 2 run(s): the worker process running it ended (exit code -9) "
                                     "before it finished")  # killed silently: no last output to quote
        else:
            assert outcome.error is None and outcome.run.status == "finished"
    assert all(store.load_checkpoint(c) is not None for c in cfgs if c.hash in victim[1])  # kept for the resume
    finished = train_runs(cfgs, store, workers=2, max_members=2)
    alone = train_runs(cfgs, RunStore(tmp_path / "alone"), workers=1, max_members=2)
    for a, b in zip(alone, finished):
        assert_same_runs(a.run, b.run)
    assert all(w.process.returncode is not None for w in started)


def test_an_error_in_the_caller_stops_every_worker_at_once(tmp_path, started):
    def fail(outcome):
        raise RuntimeError("caller failed")

    with pytest.raises(RuntimeError, match="caller failed"):
        train_runs(grid(epochs=30), tmp_path, workers=2, max_members=2, on_outcome=fail)
    # when the first ensemble's results arrive both workers hold an ensemble: killed, not waited for
    assert [w.process.returncode for w in started] == [-9, -9]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def nap(seconds, tick):
    """Called in a worker: a long call that reports no progress (a long epoch)."""
    time.sleep(seconds)
    return seconds


ORPHAN_PARENT = """from test_workers import nap
from hpnb.workers import run_calls
run_calls([(nap, (120,)), (nap, (120,))], 2, print, print)
"""


def _start_napping_parent(tmp_path) -> tuple[subprocess.Popen, list[str]]:
    """A parent process running two long calls in two workers, once both workers are up; and their pids."""
    from conftest import REPO

    parent = subprocess.Popen([sys.executable, "-c", ORPHAN_PARENT], cwd=tmp_path, start_new_session=True,
                              env=dict(os.environ, PYTHONPATH=str(REPO / "tests")), stderr=subprocess.PIPE)
    # (cwd is not tests/: a worker must import the caller's functions through PYTHONPATH, as a user's would)
    children_file = Path(f"/proc/{parent.pid}/task/{parent.pid}/children")
    deadline = time.monotonic() + 60
    children: list[str] = []
    while len(children) < 2 and time.monotonic() < deadline:
        children = children_file.read_text().split()
        time.sleep(0.1)
    time.sleep(8)  # the workers import torch and start their naps
    assert len(children) == 2 and all(_alive(int(pid)) for pid in children)
    return parent, children


@pytest.mark.skipif(not os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children"), reason="needs Linux /proc")
def test_workers_of_a_killed_parent_stop_within_seconds(tmp_path):
    """Killed mid-call (out of memory, kill -9), the parent leaves workers that must not train on without its
    locks: they notice within a second or two, even in the middle of a long epoch."""
    parent, children = _start_napping_parent(tmp_path)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while any(_alive(int(pid)) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(int(pid)) for pid in children), "a worker went on without its parent"


@pytest.mark.skipif(not os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children"), reason="needs Linux /proc")
@pytest.mark.parametrize("to", ["the parent (a notebook kernel's interrupt)", "the process group (Ctrl-C in a terminal)"])
def test_an_interrupt_stops_the_workers_at_once(tmp_path, to):
    import signal

    parent, children = _start_napping_parent(tmp_path)
    if to.startswith("the parent"):
        parent.send_signal(signal.SIGINT)
    else:
        os.killpg(parent.pid, signal.SIGINT)
    _, err = parent.communicate(timeout=30)
    assert parent.returncode != 0 and b"KeyboardInterrupt" in err
    assert err.count(b"Traceback") == 1  # the parent's alone: the workers ignore Ctrl-C and are killed
    assert not any(_alive(int(pid)) for pid in children)


def test_a_bad_workers_argument_is_refused_before_any_work(tmp_path):
    for value in (0, -2, 1.5, True):
        with pytest.raises(ConfigError, match=f"workers: got {value!r}; give a whole number"):
            train_runs(grid(epochs=1), tmp_path / "store", workers=value)
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("value", ["0", "two", "-1", "1.5"])
def test_a_bad_worker_count_is_refused_before_any_work(tmp_path, monkeypatch, value):
    monkeypatch.setenv("HPNB_CPU_WORKERS", value)
    with pytest.raises(ConfigError) as err:
        train_runs(grid(epochs=1), tmp_path / "store")
    assert str(err.value) == (f"$HPNB_CPU_WORKERS: {value!r} is not allowed; give a whole number of worker "
                              f"processes, at least 1 (1 trains in this process)")
    assert not (tmp_path / "store").exists()


def test_default_worker_count_follows_the_usable_cores(monkeypatch):
    monkeypatch.delenv("HPNB_CPU_WORKERS", raising=False)
    for cores, expected in ((1, 1), (2, 2), (3, 3), (16, workers_module.MAX_AUTO_WORKERS)):
        monkeypatch.setattr(workers_module.os, "sched_getaffinity", lambda _pid, n=cores: set(range(n)))
        assert workers_module.cpu_workers() == expected
    monkeypatch.setenv("HPNB_CPU_WORKERS", "6")
    assert workers_module.cpu_workers() == 6


def shout_then_add(a, b, tick):
    """Called in a worker: output on stdout must not corrupt the pickles the worker sends back."""
    print("stray output on stdout", flush=True)
    tick()
    tick()
    return a + b


def refuse(tick):
    raise ValueError("bad call")


def test_run_calls_returns_results_ticks_and_errors_in_order(monkeypatch, started):
    from conftest import REPO

    monkeypatch.setenv("PYTHONPATH", str(REPO / "tests"))  # so the workers can import this module's functions
    results, lost, ticks = {}, {}, []
    calls = [(shout_then_add, (1, 2)), (refuse, ()), (shout_then_add, (3, 4)), (shout_then_add, (5, 6))]
    workers_module.run_calls(calls, 2, results.__setitem__, lost.__setitem__, ticks.append)
    assert results == {0: 3, 2: 7, 3: 11} and sorted(ticks) == [0, 0, 2, 2, 3, 3]
    assert lost == {1: "it raised in its worker process: ValueError: bad call"}
    assert len(started) == 2 and [w.process.returncode for w in started] == [0, 0]  # a raise keeps the worker
