import re
import subprocess
import sys
from typing import Any, Optional

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
    with pytest.raises(ConfigError, match="missing.yaml: no such config file"):
        RunConfig.from_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"bad\.yaml: optimizer\.weight_decay: got inf, expected a finite number"):
        path.write_text("optimizer: {name: sgd, weight_decay: .inf}\n")
        RunConfig.from_yaml(path)


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


# ----------------------------------------------------------------------------- finite numbers, YAML traps
from hpnb.config import read_yaml_mapping  # noqa: E402
from hpnb.registry import YamlTrap, coerce  # noqa: E402


@pytest.mark.parametrize("value, tp, message", [
    (float("inf"), float, "k: got inf, expected a finite number"),
    (float("-inf"), float, "k: got -inf, expected a finite number"),
    (float("nan"), float, "k: got nan, expected a finite number"),
    (float("inf"), Optional[float], "k: got inf, expected a finite number"),  # not "or null": the type was right
    ([0.5, float("nan")], tuple[float, ...], "k[1]: got nan, expected a finite number"),
    ([[1.0, float("inf")]], Any, "k[0][1]: got inf, expected a finite number"),  # untyped options too
    ({"a": float("nan")}, dict, "k.a: got nan, expected a finite number"),
    (10**400, float, "k: got an integer of 401 digits, expected a finite number"),
    (2**63, int, "k: got 9223372036854775808, expected an integer that fits in 64 bits"),
    (2**63, Optional[int], "k: got 9223372036854775808, expected an integer that fits in 64 bits"),
    (True, int, "k: got True, expected an integer"),
    ("1e-3", float, "k: got '1e-3' (a string: YAML 1.1 reads 1e-3 as text; write 1.0e-3), expected a number"),
    ("2E5", Optional[float], "k: got '2E5' (a string: YAML 1.1 reads 2E5 as text; write 2.0e+5), expected a number "
     "or null"),
    ("1e3", int, "k: got '1e3' (a string: YAML 1.1 reads 1e3 as text; write the integer 1000), expected an integer"),
    ("3", int, "k: got '3' (a string: write 3 without quotes), expected an integer"),
    ("true", bool, "k: got 'true' (a string: write true or false without quotes), expected true/false"),
    (False, str, "k: got False (YAML 1.1 reads yes/no/on/off as true/false: put the text in quotes), expected a "
     "string"),
    (None, float, "k: got null, expected a number"),
    (YamlTrap("010", "octal"), int, "k: got '010' (octal), expected an integer"),
])
def test_coerce_rejects_non_finite_and_explains_yaml_traps(value, tp, message):
    with pytest.raises(ConfigError) as err:
        coerce(value, tp, "k")
    assert str(err.value) == message


def test_coerce_keeps_what_is_right():
    assert coerce(3, float, "k") == 3.0 and type(coerce(3, float, "k")) is float
    assert coerce([1, 2.5], tuple[float, ...], "k") == (1.0, 2.5)
    assert coerce(YamlTrap("010", "octal"), str, "k") == "010" and type(coerce(YamlTrap("010", "o"), str, "k")) is str
    assert coerce(-(2**63), int, "k") == -(2**63) and coerce(None, Optional[float], "k") is None


def test_non_finite_options_are_rejected_in_every_section():
    for raw, message in [
        ({"optimizer": {"name": "sgd", "weight_decay": float("inf")}}, "optimizer.weight_decay: got inf"),
        ({"optimizer": {"name": "adam", "betas": [0.9, float("nan")]}}, "optimizer.betas[1]: got nan"),
        ({"data": {"mean": [float("inf")], "std": [1.0]}}, "data.mean[0]: got inf"),
        ({"schedule": {"name": "cyclic", "max_lr": float("inf")}}, "schedule.max_lr: got inf"),
        ({"model": {"name": "ldlt_mlp", "alpha": float("-inf")}}, "model.alpha: got -inf"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message + ", expected a finite number")):
            RunConfig.from_dict(raw)


def test_yaml_file_errors_name_the_file(tmp_path):
    cases = {
        b"": "empty; expected a mapping of run settings",
        b"# only\n# comments\n": "empty (only comments); expected a mapping of run settings",
        b"null": "holds only null; expected a mapping of run settings",
        b"[1, 2]": "holds a list of 2 item(s), not a mapping; expected a mapping of run settings",
        b"\x00\x01binary": "binary data (a NUL byte at offset 0), not a YAML text file; expected a mapping of run "
                           "settings",
        b"seed: 1\nseed: 2\n": "line 2: key 'seed' appears twice (first on line 1); YAML would silently keep only "
                               "the last",
    }
    for i, (data, message) in enumerate(cases.items()):
        path = tmp_path / f"c{i}.yaml"
        path.write_bytes(data)
        with pytest.raises(ConfigError) as err:
            read_yaml_mapping(path, "run settings")
        assert str(err.value) == f"{path}: {message}"


def test_yaml_merge_keys_may_override_and_anchors_are_shared(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("base: &b {name: sgd, lr: 0.1, momentum: 0.9}\nrun: {<<: *b, lr: 0.2}\n")
    assert read_yaml_mapping(path)["run"] == {"name": "sgd", "lr": 0.2, "momentum": 0.9}


def test_yaml_1_1_integers_that_read_unlike_they_look_are_kept_as_text(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("a: 010\nb: 1:30\nc: 0x10\nd: 1_000\ne: 0\nf: -7\n")
    raw = read_yaml_mapping(path)
    assert isinstance(raw["a"], YamlTrap) and raw["a"] == "010" and "octal (010 is 8)" in raw["a"].hint
    assert isinstance(raw["b"], YamlTrap) and "base-60" in raw["b"].hint
    assert [raw[k] for k in "cdef"] == [16, 1000, 0, -7] and not any(isinstance(raw[k], str) for k in "cdef")


@pytest.mark.parametrize("raw, message", [
    ({"data": {"split_seed": 2**32}}, "data.split_seed: got 4294967296, expected an integer in 0..2**32-1"),
    ({"data": {"image_size": 257}}, "data.image_size: got 257, expected null or an integer in 1..256"),
    ({"data": {"num_classes": 1001}}, "data.num_classes: got 1001, expected null or an integer in 1..1,000"),
    ({"data": {"mean": [0.5, 0.5], "std": [0.2]}}, "data.mean/std: got 2 and 1 values"),
    ({"epochs": 100_001}, "epochs: got 100001, expected an integer in 1..100,000"),
    ({"device": "cuda:1x"}, "device: got 'cuda:1x', expected auto, cpu, cuda or cuda:N"),
])
def test_ranges(raw, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        RunConfig.from_dict(raw)
    RunConfig.from_dict({"data": {"split_seed": 2**32 - 1, "image_size": 256}, "epochs": 100_000, "device": "cuda:1"})
