import pytest

from hpnb import ConfigError, RunConfig, sweep
from hpnb.sweep import expand

from conftest import tiny_dict


def test_grid_expands_to_a_product_times_seeds():
    points = expand(RunConfig.from_dict(tiny_dict()), {"optimizer.lr": [0.01, 0.1], "init.name": ["default",
                    "kaiming_normal"]}, seeds=[0, 1, 2])
    assert len(points) == 12 and len({cfg.hash for _, cfg in points}) == 12
    assert points[0][0] == {"optimizer.lr": 0.01, "init.name": "default", "seed": 0}


def test_bad_grid_point_fails_before_any_run(store):
    with pytest.raises(ConfigError, match="sweep point .*optimizer.lr: got -1"):
        sweep(tiny_dict(), {"optimizer.lr": [0.1, -1]}, store=store)
    assert not store.root.exists() or not any(store.root.iterdir())


def test_sweep_returns_tidy_rows_and_records_failures(store):
    grid = [{"label": "ok", "optimizer.lr": 0.05},
            {"label": "bad probe", "probes.grad_norm": "no.such.weight"}]
    df = sweep(tiny_dict(epochs=2), grid, seeds=[0, 1], store=store)
    ok = df[df.label == "ok"]
    assert len(ok) == 4 and set(ok.status) == {"finished"} and set(ok.seed) == {0, 1}
    assert list(df.columns[:6]) == ["label", "optimizer.lr", "seed", "probes.grad_norm", "hash", "status"]
    bad = df[df.label == "bad probe"]
    assert len(bad) == 2 and set(bad.status) == {"failed"}
    assert bad.error.str.contains("no parameter 'no.such.weight'").all()
    assert {k: df.attrs[k] for k in ("trained", "cached", "failed")} == {"trained": 2, "cached": 0, "failed": 2}
    assert set(df.attrs["configs"]) == set(df.hash)  # every run's whole config, for the tidy data
    again = sweep(tiny_dict(epochs=2), grid[:1], seeds=[0, 1], store=store)
    assert again.attrs["cached"] == 2


def test_a_cached_sweep_shows_text_progress_without_widget_warnings(tmp_path, monkeypatch, capsys, recwarn):
    """Without ipywidgets the bars are plain text (tqdm.auto would warn "IProgress not found" in a notebook), and
    a sweep of cached runs does not print a line per run."""
    import importlib.util

    from hpnb.progress import progress_bar

    base = tiny_dict(epochs=1)
    grid = {"optimizer.lr": [0.01, 0.02, 0.03, 0.04, 0.05]}
    sweep(base, grid, seeds=[0, 1], store=tmp_path, progress=False)
    monkeypatch.setenv("HPNB_PROGRESS", "1")
    df = sweep(base, grid, seeds=[0, 1], store=tmp_path, progress=True)
    assert df.attrs["cached"] == 10
    err = capsys.readouterr().err
    assert err.count("sweep:") <= 3  # opening, maybe one refresh, closing: not one per run
    assert "10/10" in err
    if importlib.util.find_spec("ipywidgets") is None:
        assert type(progress_bar(total=1)).__module__ == "tqdm.std"
    assert not [w for w in recwarn if "IProgress" in str(w.message)]
    monkeypatch.setenv("HPNB_PROGRESS", "0")
    assert progress_bar(total=1) is None
