import pytest
import yaml

from hpnb.bench import NETWORKS, config_for, time_mode

from conftest import REPO


def paper(chapter):
    return yaml.safe_load((REPO / "params" / "paper" / f"{chapter}.yaml").read_text())


def test_networks_are_timed_at_the_paper_profiles_batch_sizes_and_shapes():
    ch1, ch2, ch3, ch4 = (paper(c) for c in ("01_init_and_schedules", "02_mobilenet_cifar100",
                                             "03_lr_decay_sequences", "04_ldlt_lipschitz_init"))
    batch = {name: spec[3] for name, spec in NETWORKS.items()}
    assert batch == {"vgg19": ch1["vgg"]["batch_size"], "resnet34": ch1["resnet"]["batch_size"],
                     "mobilenet": ch2["batch_size"], "mnist_cnn": ch3["mnist"]["batch_size"],
                     "cifar_cnn": ch3["cifar10"]["batch_size"], "ldlt_mlp": ch4["batch_size"]}
    assert NETWORKS["ldlt_mlp"][0] == {"name": "ldlt_mlp", "depth": max(ch4["depths"]), "width": ch4["width"]}
    assert config_for("vgg19", "cpu").model.options["width"] == 0.125  # shrunk on a CPU only
    assert config_for("resnet34", "cuda").model.options["width"] == 1.0
    assert config_for("resnet34", "cuda").data.augment is True


def test_a_timing_reports_consistent_step_time_and_throughput():
    t = time_mode("mnist_cnn", "eager", "cpu", steps=2, repeats=1)
    assert t.members == 1 and t.ms_per_step > 0
    assert t.samples_per_sec == pytest.approx(2 * 64 / (2 * t.ms_per_step / 1000))
    assert time_mode("mnist_cnn", "graphed", "cpu", steps=2, repeats=1) is None  # CUDA graphs need CUDA
