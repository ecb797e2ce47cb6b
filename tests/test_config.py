import subprocess
import sys

import pytest

from hpnb import ConfigError, RunConfig

from conftest import REPO, tiny_dict


def test_defaults_are_resolved_into_the_config():
    cfg = RunConfig.from_dict(tiny_dict())
    assert cfg.optimizer.options == {"lr": 0.05, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0}
    assert cfg.model.options == {"double_softmax": False}


@pytest.mark.parametrize("raw, message", [
    ({"epochz": 3}, "unknown key 'epochz'; allowed keys: data, model"),
    ({"data": {"nam": "digits"}}, "data: unknown key 'nam'; allowed keys: name, root"),
    ({"optimizer": {"name": "sgd", "momentun": 0.9}}, "optimizer: unknown option 'momentun'; allowed options: lr, momentum, nesterov, weight_decay"),
    ({"optimizer": {"name": "rmsprop"}}, "optimizer.name: unknown optimizer 'rmsprop'; allowed: adam, adamw, sgd"),
    ({"model": {"name": "vgg19", "width": -1}}, "model.width: got -1.0, expected a number > 0"),
    ({"epochs": "ten"}, "epochs: got 'ten', expected an integer"),
    ({"epochs": 0}, "epochs: got 0, expected an integer >= 1"),
    ({"data": {"name": "imagenet"}}, "data.name: got 'imagenet', expected one of 'cifar10'"),
    ({"optimizer": {"name": "sgd", "momentum": 1.5}}, "optimizer.momentum: got 1.5, expected a number in [0, 1)"),
    ({"model": {"name": "mobilenet", "sigmoid_blocks": [4, 13]}}, "expected block indices in 0..12"),
    ({"strategy": {"name": "epoch", "sequence": "seq9"}}, "strategy.sequence: got 'seq9', expected one of 'seq1'"),
    ({"strategy": {"name": "epoch"}, "schedule": {"name": "cosine"}}, "schedule must be 'constant'"),
    ({"model": {"name": "vgg19", "num_classes": 5}}, "unknown option 'num_classes'"),
    ({"data": {"name": "cifar10", "image_size": 16}}, "image_size/channels reshape only 'digits'"),
    ({"batch_size": True}, "batch_size: got True, expected an integer"),
])
def test_bad_configs_name_key_value_and_what_is_allowed(raw, message):
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict(raw)
    assert message in str(err.value)


def test_yaml_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("epochs: 2\noptimizer: {name: sgd, lr: -0.1}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: optimizer\.lr: got -0\.1, expected a number > 0"):
        RunConfig.from_yaml(path)
    with pytest.raises(ConfigError, match="no such config file"):
        RunConfig.from_yaml(tmp_path / "missing.yaml")


def test_hash_ignores_spelling_and_execution_settings_but_not_values():
    a = RunConfig.from_dict(tiny_dict())
    b = RunConfig.from_dict(tiny_dict(optimizer__momentum=0.9, optimizer__weight_decay=0, device="cuda",
                                      data__root="/elsewhere"))
    assert a.hash == b.hash
    assert a.hash != RunConfig.from_dict(tiny_dict(seed=1)).hash
    assert a.hash != RunConfig.from_dict(tiny_dict(optimizer__lr=0.050001)).hash


def test_hash_is_stable_across_processes():
    code = ("import hpnb, conftest; print(hpnb.RunConfig.from_dict(conftest.tiny_dict()).hash)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO / "tests", capture_output=True, text=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""}, check=True)
    assert out.stdout.strip() == RunConfig.from_dict(tiny_dict()).hash


def test_replace_with_dotted_keys_revalidates():
    cfg = RunConfig.from_dict(tiny_dict())
    assert cfg.replace(**{"optimizer.lr": 0.2}).optimizer.options["lr"] == 0.2
    with pytest.raises(ConfigError, match="optimizer.lr"):
        cfg.replace(**{"optimizer.lr": "fast"})
