import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, tiny_dict


def hpnb(*args, cwd):
    return subprocess.run([sys.executable, "-m", "hpnb.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "HPNB_PROGRESS": "0", "PYTHONPATH": str(REPO)})


def test_train_then_runs_lists_it(tmp_path):
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(tiny_dict(epochs=2)))
    out = hpnb("train", "run.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "finished" in out.stdout and "val_acc" in out.stdout
    assert "(cached)" in hpnb("train", "run.yaml", cwd=tmp_path).stdout
    listing = hpnb("runs", cwd=tmp_path).stdout  # the default store: ./outputs/runs
    assert "finished" in listing and "mnist_cnn" in listing and "2/2" in listing


def test_bad_config_exits_2_naming_file_and_key(tmp_path):
    (tmp_path / "bad.yaml").write_text("epochs: 2\nmodel: {name: vgg19, widht: 0.5}\n")
    out = hpnb("train", "bad.yaml", cwd=tmp_path)
    assert out.returncode == 2
    assert "bad.yaml: model: unknown option 'widht'; allowed options: batch_norm, width" in out.stderr
    assert not (tmp_path / "outputs").exists()  # nothing started


def test_missing_data_exits_2_before_training(tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"data": {"name": "cifar10", "root": str(tmp_path)}}))
    out = hpnb("train", "c.yaml", cwd=tmp_path)
    assert out.returncode == 2 and "'cifar10' not found at" in out.stderr


def test_project_with_a_bad_profile_exits_2_before_timing_anything(tmp_path):
    out = hpnb("project", "--profile", str(tmp_path / "nope"), cwd=REPO)
    assert out.returncode == 2 and "--profile" in out.stderr and "no folder" in out.stderr
    params = tmp_path / "params"
    params.mkdir()
    for f in (REPO / "params" / "smoke").iterdir():
        (params / f.name).write_text(f.read_text())
    (params / "03_lr_decay_sequences.yaml").write_text(
        (REPO / "params" / "smoke" / "03_lr_decay_sequences.yaml").read_text().replace("r0: 0.01", "r0: 0"))
    out = hpnb("project", "--profile", str(params), cwd=REPO)
    assert out.returncode == 2 and "03_lr_decay_sequences.yaml: r0: got 0" in out.stderr, out.stderr
    assert out.stdout == ""  # nothing was timed


def test_project_on_a_cuda_device_this_machine_lacks_exits_2_before_timing_anything():
    import torch

    asked = f"cuda:{torch.cuda.device_count()}"  # one past the last device, on any machine
    out = hpnb("project", "--profile", "smoke", "--device", asked, cwd=REPO)
    assert out.returncode == 2 and out.stdout == "" and "Traceback" not in out.stderr
    assert out.stderr.startswith(f"error: device: '{asked}' asked, but "), out.stderr


def test_missing_data_names_the_config_file_and_writes_nothing(tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"data": {"name": "mnist", "root": str(tmp_path / "none")}}))
    out = hpnb("train", "c.yaml", "--store", "runs", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith(f"error: c.yaml: data: dataset 'mnist' not found at {tmp_path}/none/MNIST/raw ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]  # no store, no lock file, no run folder


def test_an_unwritable_store_exits_1_naming_it(tmp_path):
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(tiny_dict(epochs=1)))
    (tmp_path / "file").write_text("")
    out = hpnb("train", "run.yaml", "--store", "file/runs", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr == ("error: cannot write to the run store file/runs: Not a directory (file/runs); the runs it "
                          "holds are intact\n")


def test_runs_verify(tmp_path):
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(tiny_dict(epochs=1)))
    assert hpnb("train", "run.yaml", "--store", "runs", cwd=tmp_path).returncode == 0
    folder = next(p for p in (tmp_path / "runs").iterdir() if not p.name.startswith("."))
    (folder / "summary.json").write_text("{}")
    listing = hpnb("runs", "--store", "runs", "--verify", cwd=tmp_path)
    assert listing.returncode == 0
    assert "damaged: summary.json is missing or does not match its checksum" in listing.stdout


DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_train_on_debian_fashion_mnist(tmp_path):
    """The issue's offline route: Debian's recompressed Fashion-MNIST files pass the data check."""
    (tmp_path / "data" / "FashionMNIST").mkdir(parents=True)
    (tmp_path / "data" / "FashionMNIST" / "raw").symlink_to(DEBIAN_FASHION)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(tiny_dict(
        epochs=1, data={"name": "fashion_mnist", "root": str(tmp_path / "data"), "train_size": 600, "test_size": 100})))
    out = hpnb("train", "run.yaml", "--store", "runs", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "finished" in out.stdout and out.stderr == ""
