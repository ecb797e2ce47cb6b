"""The chapters as files: clean notebooks, parameter files that validate, and paper profiles that match
STUDIES.md value by value."""
import json

import pytest
import yaml

from hpnb import ConfigError
from hpnb.chapters import CHAPTERS, notebook_defaults, validate_file

from conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
PROFILES = ("quick", "paper", "smoke")


def test_every_chapter_has_a_notebook():
    assert [nb.stem for nb in NOTEBOOKS] == sorted(CHAPTERS)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_are_committed_without_outputs(nb):
    cells = json.loads(nb.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in code)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_code_cell_is_the_parameters_and_the_next_validates_them(nb):
    code = [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
    assert code[0]["metadata"].get("tags") == ["parameters"]
    assert f'load("{nb.stem}", globals())' in "".join(code[1]["source"])
    assert not any("for x, y in" in "".join(c["source"]) or ".backward()" in "".join(c["source"]) for c in code)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_defaults_are_the_quick_profile(nb):
    defaults = notebook_defaults(nb)
    quick = yaml.safe_load((REPO / "params" / "quick" / f"{nb.stem}.yaml").read_text())
    assert defaults["profile"] == "quick"
    assert {k: defaults[k] for k in quick} == quick
    assert set(defaults) - set(quick) == {"profile"}  # the quick file sets every parameter


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_parameter_file_validates(nb, profile):
    validate_file(nb.stem, nb, REPO / "params" / profile / f"{nb.stem}.yaml")


def test_bad_parameter_file_names_file_key_and_allowed_values(tmp_path):
    nb = REPO / "notebooks" / "01_init_and_schedules.ipynb"
    quick = yaml.safe_load((REPO / "params" / "quick" / f"{nb.stem}.yaml").read_text())
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**quick, "vgg": {**quick["vgg"], "optimizer": {"name": "sgd", "lr": "high"}}}))
    with pytest.raises(ConfigError, match=r"bad\.yaml: vgg: optimizer\.lr: got 'high', expected a number"):
        validate_file(nb.stem, nb, bad)
    bad.write_text(yaml.safe_dump({**quick, "sedes": [0]}))
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown parameter 'sedes'; .* declares: profile, seeds"):
        validate_file(nb.stem, nb, bad)
    bad.write_text(yaml.safe_dump({**quick, "schedulers": {"ConstantLR": {"name": "constant"}}}))
    with pytest.raises(ConfigError, match="schedulers: missing ExponentialLR"):
        validate_file(nb.stem, nb, bad)


def paper_plan(chapter):
    nb = REPO / "notebooks" / f"{chapter}.ipynb"
    return validate_file(chapter, nb, REPO / "params" / "paper" / f"{chapter}.yaml")


def test_chapter1_paper_profile_matches_studies():
    p = paper_plan("01_init_and_schedules")
    d = p.vgg.data
    assert (d.name, d.num_classes, d.validation, d.val_size, d.augment, d.crop_padding, d.flip) == \
        ("cifar100", 50, "holdout", 0.1, True, 4, True)
    assert p.vgg.model.options == {"batch_norm": False, "width": 1.0}
    assert (p.vgg.optimizer.name, p.vgg.optimizer.options["lr"], p.vgg.optimizer.options["momentum"],
            p.vgg.optimizer.options["weight_decay"]) == ("sgd", 0.01, 0.9, 5e-4)
    assert (p.vgg.epochs, p.vgg.batch_size) == (50, 128)
    assert [pt["init.name"] for pt in p.init_grid] == ["kaiming_normal", "kaiming_uniform", "xavier_normal",
                                                      "xavier_uniform"]
    r = p.resnet
    assert (r.model.name, r.model.options["width"], r.init.name, r.optimizer.name, r.optimizer.options["lr"],
            r.epochs, r.batch_size) == ("resnet34", 1.0, "kaiming_uniform", "adam", 0.001, 100, 128)
    s = {pt["label"]: pt["schedule"] for pt in p.scheduler_grid}
    assert s["ConstantLR"] == {"name": "constant"}
    assert s["ExponentialLR"] == {"name": "exponential", "gamma": 0.95}
    assert s["MultiStepLR"] == {"name": "multistep", "milestones": [30, 60, 90], "gamma": 0.1}
    assert s["CyclicLR"] == {"name": "cyclic", "base_lr": 1e-4, "max_lr": 1e-3, "step_size_up_epochs": 2.0,
                             "mode": "triangular"}
    assert s["CosineAnnealingWarmRestarts"] == {"name": "cosine_warm_restarts", "T_0": 10, "T_mult": 2}


def test_chapter2_paper_profile_matches_studies():
    p = paper_plan("02_mobilenet_cifar100")
    b = p.base
    assert (b.data.name, b.data.validation, b.data.val_size, b.data.split_seed, b.data.augment,
            b.data.crop_padding) == ("cifar100", "holdout", 10000, 42, True, 4)
    assert (b.batch_size, b.drop_last, b.epochs, b.optimizer.options["momentum"]) == (128, True, 15, 0.9)
    assert p.params["lrs"] == [0.01, 0.05, 0.2] and p.params["epochs"] == 300
    assert p.params["weight_decays"] == [1e-4, 5e-4] and p.params["sigmoid_blocks"] == list(range(4, 11))
    long = p.long(0.05)
    assert long.probes.grad_norm == "layers.8.conv1.weight" and long.epochs == 300
    cosine = long.replace(schedule={"name": "cosine"})
    assert cosine.schedule.options["T_max"] is None  # None means T_max = epochs


def test_chapter2_probe_targets_the_depthwise_kernel_of_block_8():
    from hpnb import build_model

    p = paper_plan("02_mobilenet_cifar100")
    model = build_model("mobilenet", num_classes=100, sigmoid_blocks=p.params["sigmoid_blocks"])
    params = dict(model.named_parameters())
    assert params[p.params["probe_parameter"]].shape == (512, 1, 3, 3)
    assert [i for i, blk in enumerate(model.layers) if blk.sigmoid] == [4, 5, 6, 7, 8, 9, 10]


def test_chapter3_paper_profile_has_the_28_configurations_of_studies():
    from hpnb.chapters.lr_decay_sequences import SETTINGS

    p = paper_plan("03_lr_decay_sequences")
    expect = {"mnist": ("mnist", "mnist_cnn", {"double_softmax": True}, 64, 50),
              "cifar10": ("cifar10", "cifar_cnn", {"dropout": 0.25, "dropout_first_epoch_only": True}, 20, 25)}
    for dataset, (name, model, options, batch, epochs) in expect.items():
        base = p.base[dataset]
        assert (base.data.name, base.data.validation, base.data.mean, base.data.augment) == \
            (name, "test", (0.5,) * len(base.data.mean), False)
        assert (base.model.name, base.model.options, base.batch_size, base.epochs) == (model, options, batch, epochs)
        configs = {pt["label"]: base.replace(**{k: v for k, v in pt.items() if k != "label"})
                   for pt in p.grids[dataset]}
        assert list(configs) == list(SETTINGS) and len(configs) == 14
        for label, cfg in configs.items():
            if label == "SGD":
                assert (cfg.optimizer.name, cfg.optimizer.options["lr"], cfg.strategy.name) == ("sgd", 0.001, "none")
            elif label == "Adam":
                assert (cfg.optimizer.name, cfg.optimizer.options["lr"], cfg.strategy.name) == ("adam", 0.001, "none")
            else:
                strategy, seq = label.split(" · ")
                assert (cfg.optimizer.name, cfg.optimizer.options["lr"], cfg.optimizer.options["momentum"],
                        cfg.optimizer.options["weight_decay"]) == ("sgd", 0.01, 0.9, 0.0)
                assert (cfg.strategy.name, cfg.strategy.options["sequence"]) == (strategy, seq)
                assert cfg.schedule.name == "constant"
                if strategy == "cutoff":
                    special = dataset == "cifar10" and seq == "seq1"
                    assert cfg.strategy.options["cutoff_fraction"] == (0.1 if special else 0.01)
                    assert cfg.strategy.options["cutoff_decay"] == 0.2
                if strategy == "oscillation":
                    assert cfg.strategy.options["zero_padded_history"] is True
    free = p.quirk_free_base
    assert free["mnist"].model.options["double_softmax"] is False
    assert free["cifar10"].model.options["dropout_first_epoch_only"] is False
    cutoff = next(pt for pt in p.quirk_free_grids["cifar10"] if pt["label"] == "cutoff · seq1")
    assert cutoff["strategy"]["cutoff_fraction"] == 0.01


def test_chapter4_paper_profile_reads_higgs():
    p = paper_plan("04_ldlt_lipschitz_init")
    d = p.base.data
    assert (d.name, d.train_size, d.test_size) == ("higgs", 100_000, 20_000)
    assert p.params["scales"] == [1.0, 2.0, 5.0, 10.0] and p.params["depths"] == [2, 4, 8, 16]
    assert set(p.params["optimizers"]) == {"SGD", "AdamW"}
    assert len(p.grid) == 2 * 5 * 4
