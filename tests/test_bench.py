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


def layout_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_cpu_layout", REPO / "scripts" / "bench_cpu_layout.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_layout_benchmark_switches_to_the_old_way_and_back():
    """scripts/bench_cpu_layout.py measures "before" by swapping module attributes; after any mode the package
    must be what it was, or every later measurement (and test) would run the old way."""
    import torch.nn as nn
    import torch.nn.functional as F

    from hpnb import batches, loop
    from hpnb.models import pooling, simple_cnns, vgg

    bench = layout_script()
    state = lambda: (simple_cnns.max_pool2d, pooling.max_pool2d, loop.CHANNELS_LAST_ON_CPU,  # noqa: E731
                     batches.members_beside_channels, vgg.nn)
    now = state()
    assert now[0] is now[1] is not F.max_pool2d and "vgg19" in now[2] and now[4] is nn
    bench.switch("before")
    before = state()
    assert before[0] is before[1] is F.max_pool2d and before[2] == {"mobilenet"}
    assert before[3] is bench.member_first and before[4].ReLU().inplace
    for mode in ("pool", "now"):
        bench.switch(mode)
    assert state() == now


def test_the_layout_benchmark_names_the_networks_it_can_time(monkeypatch, capsys):
    bench = layout_script()
    monkeypatch.setattr("sys.argv", ["bench_cpu_layout.py", "--models", "vgg19,ldlt_mlp"])
    with pytest.raises(SystemExit) as exit_:
        bench.main()
    assert "--models: ldlt_mlp: not a conv net of the quick profile; choose from vgg19, resnet34" in str(exit_.value)
