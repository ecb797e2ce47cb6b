"""The chapters as files: narrative notebooks over their study modules, parameter files that validate, and
paper profiles that match STUDIES.md value by value."""
import json

import pytest
import yaml

from hpnb import ConfigError
from hpnb.studies import load, notebook_defaults, validate_file

from conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
PROFILES = ("quick", "paper", "smoke")


def code_cells(nb):
    return [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]


def test_every_notebook_names_its_study_module():
    assert [nb.stem for nb in NOTEBOOKS] == ["01_init_and_schedules", "02_mobilenet_cifar100",
                                             "03_lr_decay_sequences", "04_ldlt_lipschitz_init"]
    for nb in NOTEBOOKS:
        study = load(nb)
        assert study.NAME == nb.stem and study.TITLE.startswith(f"Chapter {int(nb.stem[:2])}:")


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_are_committed_without_outputs(nb):
    assert all(not c["outputs"] and c["execution_count"] is None for c in code_cells(nb))


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_read_like_write_ups(nb):
    """Parameters first, their check second; short code cells; no training loop; sections in markdown."""
    cells = json.loads(nb.read_text())["cells"]
    code = code_cells(nb)
    assert code[0]["metadata"].get("tags") == ["parameters"]
    assert "study.Params.from_namespace(globals())" in "".join(code[1]["source"])
    assert max(len(c["source"]) for c in code) <= 20
    assert not any("for x, y in" in "".join(c["source"]) or ".backward()" in "".join(c["source"]) for c in code)
    assert not any("display(" in "".join(c["source"]) for c in code)  # prose comes from the study, not f-strings
    headings = [line for c in cells if c["cell_type"] == "markdown" for line in c["source"] if line.startswith("## ")]
    assert len(headings) >= 4 and any("Conclusion" in h for h in headings)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_defaults_are_the_quick_profile(nb):
    defaults = notebook_defaults(nb)
    quick = yaml.safe_load((REPO / "params" / "quick" / f"{nb.stem}.yaml").read_text())
    assert defaults["profile"] == "quick"
    assert {k: defaults[k] for k in quick} == quick
    assert set(defaults) - set(quick) == {"profile"}  # the quick file sets every parameter
    assert set(defaults) == set(load(nb).Params.fields())  # and the schema lists exactly those


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_parameter_file_validates(nb, profile):
    validate_file(nb, REPO / "params" / profile / f"{nb.stem}.yaml")


def test_bad_parameter_file_names_file_key_and_allowed_values(tmp_path):
    nb = REPO / "notebooks" / "01_init_and_schedules.ipynb"
    quick = yaml.safe_load((REPO / "params" / "quick" / f"{nb.stem}.yaml").read_text())
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**quick, "vgg": {**quick["vgg"], "optimizer": {"name": "sgd", "lr": "high"}}}))
    with pytest.raises(ConfigError, match=r"bad\.yaml: vgg: optimizer\.lr: got 'high', expected a number"):
        validate_file(nb, bad)
    bad.write_text(yaml.safe_dump({**quick, "sedes": [0]}))
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown parameter 'sedes'; .* declares: profile, seeds"):
        validate_file(nb, bad)
    bad.write_text(yaml.safe_dump({**quick, "schedulers": {"ConstantLR": {"name": "constant"}}}))
    with pytest.raises(ConfigError, match="schedulers: missing ExponentialLR"):
        validate_file(nb, bad)
    bad.write_text(yaml.safe_dump({**quick, "seeds": [0, 0]}))
    with pytest.raises(ConfigError, match=r"bad\.yaml: seeds: got \(0, 0\), expected no repeated entries"):
        validate_file(nb, bad)


def paper(chapter):
    return validate_file(REPO / "notebooks" / f"{chapter}.ipynb", REPO / "params" / "paper" / f"{chapter}.yaml")


def sweep_configs(sweep):
    return {pt["label"]: sweep.base.replace(**{k: v for k, v in pt.items() if not k.startswith("label")})
            for pt in sweep.grid}


def test_paper_profiles_repeat_every_setting_over_three_seeds():
    for nb in NOTEBOOKS:
        assert paper(nb.stem).seeds == (0, 1, 2)


def test_chapter1_paper_profile_matches_studies():
    from hpnb.studies.init_and_schedules import plan

    p = paper("01_init_and_schedules")
    d = p.vgg_config.data
    assert (d.name, d.num_classes, d.validation, d.val_size, d.augment, d.crop_padding, d.flip) == \
        ("cifar100", 50, "holdout", 0.1, True, 4, True)
    v = p.vgg_config
    assert v.model.options == {"batch_norm": False, "width": 1.0}
    assert (v.optimizer.name, v.optimizer.options["lr"], v.optimizer.options["momentum"],
            v.optimizer.options["weight_decay"], v.epochs, v.batch_size) == ("sgd", 0.01, 0.9, 5e-4, 50, 128)
    sweeps = plan(p).sweeps
    assert [c.init.name for c in sweep_configs(sweeps["inits"]).values()] == [
        "kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform"]
    r = p.resnet_config
    assert (r.model.name, r.model.options["width"], r.init.name, r.optimizer.name, r.optimizer.options["lr"],
            r.epochs, r.batch_size) == ("resnet34", 1.0, "kaiming_uniform", "adam", 0.001, 100, 128)
    s = {label: cfg.schedule for label, cfg in sweep_configs(sweeps["schedulers"]).items()}
    assert s["ConstantLR"].name == "constant"
    assert (s["ExponentialLR"].name, s["ExponentialLR"].options) == ("exponential", {"gamma": 0.95})
    assert s["MultiStepLR"].options == {"milestones": (30, 60, 90), "gamma": 0.1}
    assert s["CyclicLR"].options == {"base_lr": 1e-4, "max_lr": 1e-3, "step_size_up_epochs": 2.0,
                                     "mode": "triangular"}
    assert s["CosineAnnealingWarmRestarts"].options == {"T_0": 10, "T_mult": 2, "eta_min": 0.0}


def test_chapter2_paper_profile_matches_studies():
    from hpnb.studies.mobilenet_cifar100 import later_sweeps

    p = paper("02_mobilenet_cifar100")
    b = p.base
    assert (b.data.name, b.data.validation, b.data.val_size, b.data.split_seed, b.data.augment,
            b.data.crop_padding) == ("cifar100", "holdout", 10000, 42, True, 4)
    assert (b.batch_size, b.drop_last, b.epochs, b.optimizer.options["momentum"]) == (128, True, 15, 0.9)
    assert p.lrs == (0.01, 0.05, 0.2) and p.epochs == 300
    assert p.weight_decays == (1e-4, 5e-4) and p.sigmoid_blocks == tuple(range(4, 11))
    later = later_sweeps(p, 0.05)
    for cfg in sweep_configs(later["activation"]).values():  # § 4 uses the specified weight decay
        assert cfg.optimizer.options["weight_decay"] == 5e-4 and cfg.schedule.name == "cosine"
        assert cfg.probes.grad_norm == "layers.8.conv1.weight" and cfg.epochs == 300
    assert later["schedule"].base.schedule.name == "constant"
    assert sweep_configs(later["schedule"])["cosine"].schedule.options["T_max"] is None  # None: T_max = epochs


def test_chapter2_probe_targets_the_depthwise_kernel_of_block_8():
    from hpnb import build_model

    p = paper("02_mobilenet_cifar100")
    model = build_model("mobilenet", num_classes=100, sigmoid_blocks=p.sigmoid_blocks)
    assert dict(model.named_parameters())[p.probe_parameter].shape == (512, 1, 3, 3)
    assert [i for i, blk in enumerate(model.layers) if blk.sigmoid] == [4, 5, 6, 7, 8, 9, 10]


def test_chapter3_paper_profile_has_the_28_configurations_of_studies():
    from hpnb.studies.lr_decay_sequences import SETTINGS

    p = paper("03_lr_decay_sequences")
    expect = {"mnist": ("mnist", "mnist_cnn", {"double_softmax": True}, 64, 50),
              "cifar10": ("cifar10", "cifar_cnn", {"dropout": 0.25, "dropout_first_epoch_only": True}, 20, 25)}
    for dataset, (name, model, options, batch, epochs) in expect.items():
        base = p.base(dataset)
        assert (base.data.name, base.data.validation, base.data.mean, base.data.augment) == \
            (name, "test", (0.5,) * len(base.data.mean), False)
        assert (base.model.name, base.model.options, base.batch_size, base.epochs) == (model, options, batch, epochs)
        configs = sweep_configs(p.sweep(dataset))
        assert list(configs) == list(SETTINGS) and len(configs) == 14
        for label, cfg in configs.items():
            if label in ("SGD", "Adam"):
                assert (cfg.optimizer.name, cfg.optimizer.options["lr"], cfg.strategy.name) == \
                    (label.lower(), 0.001, "none")
                continue
            strategy, seq = label.split(" · ")
            assert (cfg.optimizer.name, cfg.optimizer.options["lr"], cfg.optimizer.options["momentum"],
                    cfg.optimizer.options["weight_decay"]) == ("sgd", 0.01, 0.9, 0.0)
            assert (cfg.strategy.name, cfg.strategy.options["sequence"], cfg.schedule.name) == (strategy, seq, "constant")
            if strategy == "cutoff":
                special = dataset == "cifar10" and seq == "seq1"
                assert cfg.strategy.options["cutoff_fraction"] == (0.1 if special else 0.01)
                assert cfg.strategy.options["cutoff_decay"] == 0.2
            if strategy == "oscillation":
                assert cfg.strategy.options["zero_padded_history"] is True
    assert p.base("mnist", quirks=False).model.options["double_softmax"] is False
    assert p.base("cifar10", quirks=False).model.options["dropout_first_epoch_only"] is False
    assert sweep_configs(p.sweep("cifar10", quirks=False))["cutoff · seq1"].strategy.options["cutoff_fraction"] == 0.01


def test_chapter4_paper_profile_reads_higgs():
    p = paper("04_ldlt_lipschitz_init")
    d = p.base.data
    assert (d.name, d.train_size, d.test_size) == ("higgs", 100_000, 20_000)
    assert p.scales == (1.0, 2.0, 5.0, 10.0) and p.depths == (2, 4, 8, 16)
    assert set(p.optimizers) == {"SGD", "AdamW"} and len(p.grid) == 2 * 5 * 4
