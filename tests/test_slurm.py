"""Runs on a real single-node SLURM (``scripts/slurm-local.sh``; ``.ci/run`` installs and starts it): the smoke
profile submitted, watched with ``hpnb status`` and then rendered without training; a preempted task that
resumes from its checkpoint; a failing run reported with its log while the others finish."""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from hpnb import RunConfig, RunStore
from hpnb.cluster import JobOptions, TrainTask, _executor, scheduler_states, status
from hpnb.runner import train_runs

from conftest import REPO, SLOW_ENSEMBLE, tiny_dict

pytestmark = pytest.mark.slow
TIMING = ["seconds", "samples_per_sec"]


def slurm_reason() -> str:
    """Why SLURM cannot be used here ("" when it can)."""
    if not shutil.which("sbatch"):
        return "no SLURM client (sbatch) on this machine; .ci/run installs one with scripts/slurm-local.sh"
    if not os.environ.get("SLURM_CONF") and not os.path.exists("/etc/slurm/slurm.conf"):
        return "SLURM_CONF is not set (start a cluster with scripts/slurm-local.sh start)"
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    if "is UP" not in ping.stdout:
        return f"slurmctld does not answer: {(ping.stdout + ping.stderr).strip()[:200]}"
    return ""


REASON = slurm_reason()
needs_slurm = pytest.mark.skipif(bool(REASON), reason=REASON)


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("HPNB_OUTPUTS", str(tmp_path / "outputs"))
    monkeypatch.setenv("HPNB_STORE", str(tmp_path / "outputs" / "runs"))
    monkeypatch.setenv("HPNB_LOG_OUTPUT", "0")
    return tmp_path


def wait_for(predicate, timeout: float, every: float = 1.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"gave up after {timeout:.0f} s")


@needs_slurm
def test_smoke_profile_through_slurm_then_the_report_trains_nothing(isolated):
    from hpnb.report import build_report

    start = time.time()
    out = subprocess.run([sys.executable, "-m", "hpnb.cli", "submit", "--profile", "smoke", "--executor", "slurm",
                          "--time", "20"], cwd=REPO, capture_output=True, text=True, env=os.environ)
    assert out.returncode == 0, out.stderr
    assert "continuation job" in out.stdout  # chapter 2 picks its rate from its first sweep
    seen = []

    def finished():
        table, failed = status("smoke")
        seen.append(table.copy())
        assert failed.empty, failed.to_dict("records")
        return (table["done"] == table["planned"]).all() and not table["waiting"].any()

    wait_for(finished, timeout=600, every=2)
    submitted = time.time() - start
    assert any((t["running"] + t["queued"]).sum() > 0 for t in seen)  # status saw the work in flight
    assert any(t.loc["02_mobilenet_cifar100", "planned"] < seen[-1].loc["02_mobilenet_cifar100", "planned"]
               for t in seen)  # the second round appeared once the learning rate was known
    store = RunStore()
    _, chapters = build_report("smoke")
    planned = {cfg.hash for ch in chapters for cfg in ch.plan(store).configs()}
    assert set(store.list_runs().hash) == planned  # every planned run in the store, once
    assert not (store.root / ".quarantine").exists()
    assert all(ch.status == "ok" and ch.trained == 0 for ch in chapters)  # the report trained nothing
    print(f"\nsmoke profile on the local SLURM: submit → all runs done {submitted:.0f} s, "
          f"→ report rendered {time.time() - start:.0f} s")


def preempt(job_id: str) -> None:
    subprocess.run(["scancel", "--signal=USR2", str(job_id)], check=True)


@needs_slurm
def test_a_preempted_task_is_requeued_and_resumes_from_its_checkpoint(isolated):
    cfgs = [RunConfig.from_dict({**c, "epochs": 12}) for c in SLOW_ENSEMBLE]
    store = RunStore(isolated / "runs")
    executor = _executor(JobOptions(time_min=20), isolated / "jobs")
    job = executor.submit(TrainTask([c.to_dict() for c in cfgs], str(store.root), {"HPNB_CHECKPOINT_SECONDS": "0"}))
    states = lambda: [store.load_checkpoint(c, quarantine=False) for c in cfgs]  # noqa: E731
    before = wait_for(lambda: (s := states()) and all(x is not None and x.epoch >= 2 for x in s) and s, 300, 0.2)
    preempt(job.job_id)
    result = job.result()  # waits through the requeue
    assert sorted(result.values()) == ["trained"] * 3
    log = open(job.paths.stderr).read()  # appended across the two attempts
    assert "this job is preempted" in log and "DUE TO JOB REQUEUE" in log
    clean = train_runs(cfgs, RunStore(isolated / "clean"), progress=False)
    for cfg, state, uninterrupted in zip(cfgs, before, clean):
        run = store.load(cfg)
        # the epochs done before the preemption were not redone: even their wall-clock times are the same
        assert run.history.iloc[:state.epoch].to_dict("records") == state.history
        assert run.history.drop(columns=TIMING).equals(uninterrupted.run.history.drop(columns=TIMING))


@needs_slurm
def test_a_failing_run_is_reported_with_its_log_and_the_others_finish(isolated):
    good = [RunConfig.from_dict(tiny_dict(seed=s, epochs=2)) for s in (0, 1)]
    bad = RunConfig.from_dict(tiny_dict(probes={"grad_norm": "no.such.weight"}))
    store = RunStore(isolated / "runs")
    executor = _executor(JobOptions(time_min=10), isolated / "jobs")
    with executor.batch():
        jobs = [executor.submit(TrainTask([c.to_dict() for c in group], str(store.root), {}))
                for group in (good, [bad])]
    for job in jobs:
        job.wait()
    assert all(store.load(c) is not None for c in good)
    assert jobs[1].exception() is not None
    wait_for(lambda: scheduler_states([jobs[1].job_id]).get(str(jobs[1].job_id)) == "FAILED", 60)
    note = json.loads((store.root / ".failed" / f"{bad.hash}.json").read_text())
    assert "probes.grad_norm: the model has no parameter 'no.such.weight'" in note["error"]
    assert note["log"] == str(jobs[1].paths.stderr)
    wait_for(lambda: "no.such.weight" in open(note["log"]).read(), 30)  # the log shows the error too
