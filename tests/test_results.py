import json

import pandas as pd
import pytest

from hpnb.claims import Claim, Measure, better
from hpnb.results import ChapterResults
from hpnb.stats import fmt_mean_std, mean_std
from hpnb.sweep import sweep

from conftest import tiny_dict


def test_mean_std_uses_the_sample_std_and_ignores_non_finite_values():
    assert mean_std([1.0, 2.0, 3.0, float("nan"), None]) == (2.0, 1.0, 3)
    assert fmt_mean_std([0.5]) == "0.50" and fmt_mean_std([]) == "—"


def test_results_file_holds_references_verdicts_and_run_counts(tmp_path):
    r = ChapterResults("99_test", "Test chapter", "smoke", data="digits", directory=tmp_path)
    row = r.reference("Table 1", "x", 30.0, [31.0, 33.0], "%")
    assert row == {"table": "Table 1", "item": "x", "reference": 30.0, "reproduced": 32.0,
                   "std": pytest.approx(2 ** 0.5), "difference": 2.0, "n_seeds": 2, "unit": "%"}
    r.judge(better(Claim("k", "a beats b", "1"), Measure("a", (1, 1.1, 1.2)), Measure("b", (0, 0.1, 0.2))))
    data = json.loads(r.save().read_text())
    assert data["claims"][0]["verdict"] == "supported" and data["claims"][0]["source"] == "write-up"
    assert data["references"][0]["difference"] == 2.0
    assert data["runs"] == {"trained": 0, "cached": 0, "failed": 0}


def test_tidy_data_has_one_row_per_run_epoch_with_the_config(store, tmp_path):
    r = ChapterResults("99_test", "Test chapter", "smoke", directory=tmp_path)
    df = sweep(tiny_dict(epochs=2), [{"label": "a", "optimizer.lr": 0.05}, {"label": "b", "optimizer.lr": 0.1}],
               seeds=[0, 1], store=store, progress=False)
    r.add_sweep("lr", df)
    r.save()
    tidy = pd.read_csv(tmp_path / "99_test.csv")
    assert len(tidy) == 4 * 2 and set(tidy.sweep) == {"lr"}
    assert sorted(tidy["config.optimizer.lr"].unique()) == [0.05, 0.1]
    assert (tidy.groupby("hash").epoch.apply(list) == pd.Series([[1, 2]] * 4, index=sorted(set(tidy.hash)))).all()
    assert {"config.model.name", "config.data.name", "config.seed", "train_loss", "label"} <= set(tidy.columns)
    assert r.runs == {"trained": 4, "cached": 0, "failed": 0}
