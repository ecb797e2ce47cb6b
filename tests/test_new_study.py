"""Adding a study takes one study module, one notebook and one parameter file per profile (README, Contributing):
a tiny fifth study built from those three files runs through the whole report."""
import json
import os
import sys
import textwrap

import pytest

from hpnb.report import build_report

pytestmark = pytest.mark.slow

STUDY = '''
"""A tiny study: does a larger learning rate reach a lower training loss in a few epochs?"""
from dataclasses import dataclass
from typing import Annotated

from hpnb import plots
from hpnb.claims import Claim, better
from hpnb.exhibits import Section, Text
from hpnb.schema import ALL_POSITIVE, NON_EMPTY
from hpnb.studies.base import Seeds, StudyParams, StudyPlan, Sweep, run_config, setting_measure

NAME = "05_tiny"
TITLE = "Chapter 5: A tiny study"
CLAIM = Claim("ch5-larger-rate", "The larger rate ends with a lower training loss", "1", min_effect=0.0)


@dataclass(frozen=True)
class Params(StudyParams):
    profile: str
    seeds: Seeds
    lrs: Annotated[tuple[float, ...], NON_EMPTY, ALL_POSITIVE]
    epochs: int


def plan(p: Params, store=None) -> StudyPlan:
    base = run_config({"data": {"name": "synthetic", "train_size": 300, "test_size": 100, "validation": "test"},
                       "model": {"name": "mlp", "width": 8}, "epochs": p.epochs, "batch_size": 100,
                       "optimizer": {"name": "sgd", "lr": p.lrs[0]}, "device": "cpu"}, "lrs")
    grid = tuple({"label": f"lr {lr:g}", "optimizer.lr": lr} for lr in p.lrs)
    return StudyPlan({"lr": Sweep("lr", base, grid, p.seeds)})


def analyse(p: Params, runs, results) -> Section:
    fig, (ax,) = plots.figure(1)
    plots.curves(runs, "train_loss", "label", ax)
    figure = results.figure("1", "Training loss per rate", fig, plots.curve_data(runs, ["train_loss"]))
    small, large = (setting_measure(runs, f"lr {lr:g}", "train_loss") for lr in (min(p.lrs), max(p.lrs)))
    verdict = results.judge(better(CLAIM, large, small, higher=False))
    return Section(figure, Text(f"The larger rate ending lower is **{verdict.verdict}**."), results.verdicts_in("1"))
'''


def notebook(cells) -> dict:
    out = []
    for i, (kind, source) in enumerate(cells):
        cell = {"cell_type": kind, "id": f"c{i}", "metadata": {}, "source": source}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        out.append(cell)
    out[1]["metadata"] = {"tags": ["parameters"]}
    return {"cells": out, "metadata": {"hpnb": {"study": "tiny_study"}, "kernelspec": {
        "display_name": "Python 3", "language": "python", "name": "python3"}}, "nbformat": 4, "nbformat_minor": 5}


def test_a_fifth_study_from_three_files_runs_through_the_report(tmp_path, monkeypatch):
    root, code = tmp_path / "project", tmp_path / "code"
    (root / "notebooks").mkdir(parents=True)
    (root / "params" / "smoke").mkdir(parents=True)
    code.mkdir()
    (code / "tiny_study.py").write_text(textwrap.dedent(STUDY))  # 1. the study module
    (root / "notebooks" / "05_tiny.ipynb").write_text(json.dumps(notebook([  # 2. the notebook
        ("markdown", "# Chapter 5: A tiny study\n\nTwo learning rates, one claim."),
        ("code", 'profile = "quick"\nseeds = [0, 1]\nlrs = [0.01, 0.3]\nepochs = 3'),
        ("code", "from hpnb.results import ChapterResults\nimport tiny_study as study\n\n"
                 "p = study.Params.from_namespace(globals())\nplan = study.plan(p)\n"
                 "results = ChapterResults(study.NAME, study.TITLE, p.profile)"),
        ("markdown", "## 1 Two rates"),
        ("code", 'runs = results.add_sweep("lr", plan.sweeps["lr"].run())\nstudy.analyse(p, runs, results)'),
        ("markdown", "## 2 Conclusion\n\nThe verdict above is the chapter's."),
        ("code", "results.save()\nresults.scorecard()")])))
    (root / "params" / "smoke" / "05_tiny.yaml").write_text("seeds: [0, 1]\nlrs: [0.01, 0.3]\nepochs: 2\n")  # 3.
    monkeypatch.syspath_prepend(str(code))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(code), *sys.path]))  # for the notebook's kernel
    monkeypatch.setenv("HPNB_OUTPUTS", str(tmp_path / "outputs"))
    monkeypatch.setenv("HPNB_STORE", str(tmp_path / "outputs" / "runs"))
    monkeypatch.setenv("HPNB_LOG_OUTPUT", "0")
    index, (chapter,) = build_report("smoke", root=root)
    assert chapter.status == "ok", chapter.error
    assert chapter.trained == 4 and chapter.results["runs"]["trained"] == 0  # executed first, then only read
    assert chapter.results["claims"][0]["key"] == "ch5-larger-rate"
    page = (tmp_path / "outputs" / "smoke" / "html" / "05_tiny.html").read_text()
    assert 'alt="Training loss per rate"' in page and "Chapter 5: A tiny study" in index.read_text()
