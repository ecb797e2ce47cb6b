"""Faults at the level of a whole report, counted in the fault-injection figures:

- bad chapter parameter files and profile folders through ``hpnb report``: exit 2, one line naming the file and
  the key, no traceback, nothing written;
- SIGKILL of ``hpnb report`` while it trains and while it renders a chapter: the rerun reuses every finished run;
- two ``hpnb report`` processes on one store at once: every run trained exactly once, both indexes agree.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from hpnb import RunStore, cli

from conftest import REPO, fault_case

pytestmark = pytest.mark.slow
SMOKE = REPO / "params" / "smoke"


@dataclass
class BadParams:
    label: str
    chapter: str  # the file to change ("" for the profile folder itself)
    change: object  # a dict merged into the smoke file, raw text/bytes replacing it, or None to delete it
    expect: tuple[str, ...]  # what the one-line message must contain, besides the file's path


CH1, CH2, CH3, CH4 = "01_init_and_schedules", "02_mobilenet_cifar100", "03_lr_decay_sequences", "04_ldlt_lipschitz_init"
BAD_CHAPTER_PARAMS = [
    BadParams("empty file", CH1, "", ("empty; expected a mapping of chapter parameters",)),
    BadParams("only comments", CH1, "# nothing here\n", ("empty",)),
    BadParams("a list", CH1, "- 1\n- 2\n", ("expected a mapping",)),
    BadParams("binary garbage", CH1, bytes(range(256)) * 4, ("binary data",)),
    BadParams("not UTF-8", CH1, "seeds: [0]\nnote: caf\xe9\n".encode("latin-1"), ("not UTF-8",)),
    BadParams("invalid YAML", CH1, "seeds: [0, 1\n", ("not valid YAML",)),
    BadParams("unknown parameter", CH1, {"sedes": [0]}, ("unknown parameter 'sedes'", "declares: profile, seeds")),
    BadParams("no seeds", CH1, {"seeds": []}, ("seeds: got ()", "at least one entry")),
    BadParams("repeated seed", CH1, {"seeds": [0, 0]}, ("seeds: got (0, 0)", "no repeated entries")),
    BadParams("negative seed", CH1, {"seeds": [-1]}, ("seeds: got (-1,)", "integers >= 0")),
    BadParams("seeds as text", CH1, {"seeds": "0, 1"}, ("seeds: got '0, 1'", "a list")),
    BadParams("infinite rate", CH1, {"vgg": {"model": {"name": "vgg19", "width": 0.0625}, "epochs": 1,
                                             "optimizer": {"name": "sgd", "lr": float("inf")}}},
              ("vgg.optimizer.lr: got inf", "finite")),
    BadParams("rate as text", CH1, "vgg: {model: {name: vgg19}, optimizer: {name: sgd, lr: 1e-3}}\n",
              ("vgg: optimizer.lr", "YAML 1.1 reads 1e-3 as text")),
    BadParams("wrong model", CH1, {"vgg": {"model": {"name": "resnet34"}}}, ("vgg.model.name: got 'resnet34'",)),
    BadParams("data inside a part", CH1, {"vgg": {"model": {"name": "vgg19"}, "data": {"name": "digits"}}},
              ("vgg.data: set it in the chapter's 'data' parameter",)),
    BadParams("missing scheduler", CH1, {"schedulers": {"ConstantLR": {"name": "constant"}}},
              ("schedulers: missing ExponentialLR",)),
    BadParams("unknown scheduler", CH1, {"schedulers": {"OneCycleLR": {"name": "constant"}}},
              ("schedulers: unknown scheduler 'OneCycleLR'",)),
    BadParams("bad scheduler option", CH1, {"schedulers": {**yaml.safe_load((SMOKE / f"{CH1}.yaml").read_text())[
        "schedulers"], "CyclicLR": {"name": "cyclic", "mode": "sawtooth"}}}, ("schedulers.CyclicLR", "mode")),
    BadParams("unknown dataset", CH1, {"data": {"name": "imagenet"}}, ("data.name: got 'imagenet'",)),
    BadParams("no rates", CH2, {"lrs": []}, ("lrs: got ()", "at least one entry")),
    BadParams("negative rate", CH2, {"lrs": [0.1, -0.1]}, ("lrs: got (0.1, -0.1)", "positive numbers")),
    BadParams("momentum above 1", CH2, {"momentum": 1.5}, ("momentum: got 1.5", "[0, 1)")),
    BadParams("gap in sigmoid blocks", CH2, {"sigmoid_blocks": [4, 6]}, ("sigmoid_blocks", "contiguous")),
    BadParams("sigmoid block past 12", CH2, {"sigmoid_blocks": [12, 13]}, ("sigmoid_blocks", "0..12")),
    BadParams("probe on no parameter", CH2, {"probe_parameter": "layers.99.conv1.weight"},
              ("probe_parameter: the model has no parameter 'layers.99.conv1.weight'",)),
    BadParams("not a mobilenet", CH2, {"model": {"name": "vgg19"}}, ("model.name: got 'vgg19'",)),
    BadParams("negative weight decay", CH2, {"activation_weight_decay": -1.0},
              ("activation_weight_decay: got -1.0", ">= 0")),
    BadParams("zero r0", CH3, {"r0": 0}, ("r0: got 0", "> 0")),
    BadParams("unknown seq4 formula", CH3, {"seq4_variant": "seq5"}, ("seq4_variant: got 'seq5'",)),
    BadParams("holdout validation", CH3, {"mnist": {**yaml.safe_load((SMOKE / f"{CH3}.yaml").read_text())["mnist"],
                                                    "data": {"name": "digits", "validation": "holdout"}}},
              ("mnist.data.validation", "official test split")),
    BadParams("too few epochs", CH3, {"cifar10": {**yaml.safe_load((SMOKE / f"{CH3}.yaml").read_text())["cifar10"],
                                                  "epochs": 3}}, ("cifar10.epochs: got 3", "at least 5 epochs")),
    BadParams("flag as text", CH3, {"quirk_free": "yes"}, ("quirk_free: got 'yes'", "true/false")),
    BadParams("zero depth", CH4, {"depths": [0, 2]}, ("depths: got (0, 2)", "integers >= 1")),
    BadParams("unknown normalisation", CH4, {"normalisation": "qr"}, ("normalisation: got 'qr'",)),
    BadParams("moment order 11", CH4, {"moment_orders": [1, 11]}, ("moment_orders", "1..10")),
    BadParams("moment case not a pair", CH4, {"moment_cases": [[4]]}, ("moment_cases", "[m, n] pairs")),
    BadParams("no optimizers", CH4, {"optimizers": {}}, ("optimizers: got {}", "at least one entry")),
    BadParams("NaN rate", CH4, {"optimizers": {"SGD": {"name": "sgd", "lr": float("nan")}}},
              ("optimizers.SGD", "finite")),
    BadParams("too few draws", CH4, {"mc_draws": 5}, ("mc_draws: got 5", ">= 10")),
    BadParams("a file for no chapter", "05_typo", {"seeds": [0]}, ("no chapter of that name",)),
    BadParams("a missing chapter file", CH2, None, ("missing; every chapter needs a parameter file",)),
]


def _profile(case: BadParams, tmp_path: Path) -> Path:
    folder = tmp_path / "profile"
    shutil.copytree(SMOKE, folder)
    path = folder / f"{case.chapter}.yaml"
    if case.change is None:
        path.unlink()
    elif isinstance(case.change, dict):
        values = yaml.safe_load(path.read_text()) if path.exists() else {}
        path.write_text(yaml.safe_dump({**values, **case.change}))
    else:
        path.write_bytes(case.change if isinstance(case.change, bytes) else case.change.encode())
    return folder


@pytest.mark.parametrize("case", BAD_CHAPTER_PARAMS, ids=[c.label for c in BAD_CHAPTER_PARAMS])
def test_bad_chapter_parameters_are_rejected_before_any_work(case, tmp_path, capsys, monkeypatch):
    with fault_case("bad chapter parameters (hpnb report)"):
        folder = _profile(case, tmp_path)
        monkeypatch.setenv("HPNB_OUTPUTS", str(tmp_path / "outputs"))
        monkeypatch.setenv("HPNB_STORE", str(tmp_path / "outputs" / "runs"))
        code = cli.main(["report", "--profile", str(folder)])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
        assert err.startswith(f"error: {folder / (case.chapter + '.yaml')}: "), err
        assert all(text in err for text in case.expect), err
        assert not (tmp_path / "outputs").exists()  # nothing written


def test_a_profile_folder_that_does_not_exist(tmp_path, capsys):
    with fault_case("bad chapter parameters (hpnb report)"):
        assert cli.main(["report", "--profile", str(tmp_path / "nope")]) == 2
        assert "--profile" in capsys.readouterr().err and not (tmp_path / "nope").exists()


# =========================================================================== killing and racing reports
def report(outputs: Path, store: Path, *chapters: str) -> subprocess.Popen:
    env = {**os.environ, "HPNB_OUTPUTS": str(outputs), "HPNB_STORE": str(store), "HPNB_LOG_OUTPUT": "0",
           "HPNB_PROGRESS": "0"}
    return subprocess.Popen([sys.executable, "-m", "hpnb.cli", "report", "--profile", "smoke", "--chapter",
                             *chapters], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # its own group: the kernel dies with it


def finished_runs(store: Path) -> dict[str, float]:
    """Finished run → when its manifest was written (a rerun that retrains a run rewrites it)."""
    out = {}
    for manifest in store.glob("*/manifest.json"):
        if "summary.json" in manifest.read_text():
            out[manifest.parent.name] = manifest.stat().st_mtime_ns
    return out


def kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def trained_now(index: Path) -> int:
    import re

    rows = re.findall(r"<td>(\d+)</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td>", index.read_text())
    return sum(int(row[1]) for row in rows)


def test_sigkill_of_a_report_while_training_and_while_rendering(tmp_path):
    outputs, store = tmp_path / "outputs", tmp_path / "runs"
    with fault_case("SIGKILL of hpnb report, then rerun"):  # while training
        proc = report(outputs, store, "04")
        deadline = time.time() + 120
        while time.time() < deadline and len(finished_runs(store)) < 6:
            time.sleep(0.1)
        kill(proc)
        before = finished_runs(store)
        assert 6 <= len(before) < 24, f"not caught mid-way: {len(before)} runs finished"
        rerun = report(outputs, store, "04")
        assert rerun.wait(300) == 0, rerun.stdout.read()
        after = finished_runs(store)
        assert len(after) == 24 and all(after[h] == t for h, t in before.items())  # finished runs reused
        assert trained_now(outputs / "smoke" / "index.html") == 24 - len(before)
    with fault_case("SIGKILL of hpnb report, then rerun"):  # while a chapter's notebook runs
        (outputs / "smoke" / "index.html").unlink()
        proc = report(outputs, store, "04")
        for line in proc.stdout:
            if line.startswith("[1/1] 04_ldlt_lipschitz_init"):
                time.sleep(2)  # the kernel is executing the chapter
                break
        kill(proc)
        assert not (outputs / "smoke" / "index.html").exists()
        rerun = report(outputs, store, "04")
        assert rerun.wait(300) == 0
        assert trained_now(outputs / "smoke" / "index.html") == 0 and finished_runs(store) == after


def test_two_reports_on_one_store_train_each_run_once(tmp_path):
    with fault_case("two hpnb report processes on one store"):
        store = tmp_path / "runs"
        procs = [report(tmp_path / f"outputs{i}", store, "03", "04") for i in (0, 1)]
        assert [p.wait(600) for p in procs] == [0, 0], [p.stdout.read() for p in procs]
        indexes = [tmp_path / f"outputs{i}" / "smoke" / "index.html" for i in (0, 1)]
        assert sum(trained_now(index) for index in indexes) == len(RunStore(store).list_runs()) == 56 + 24
        claims = [[json.loads((tmp_path / f"outputs{i}" / "smoke" / "results" / f"{ch}.json").read_text())["claims"]
                   for ch in (CH3, CH4)] for i in (0, 1)]
        assert claims[0] == claims[1]  # both indexes tell the same story


def test_enough_bad_inputs_in_all():
    """The issue's aim: at least 50 bad inputs across run configs and chapter parameters."""
    from test_faults import BAD_RUN_CONFIGS

    assert len(BAD_RUN_CONFIGS) + len(BAD_CHAPTER_PARAMS) >= 50
