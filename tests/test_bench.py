import pytest
import yaml

from hpnb.bench import NETWORKS, config_for, time_mode

from conftest import REPO, graph_nodes


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


def ops_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_cpu_ops", REPO / "scripts" / "bench_cpu_ops.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_ops_benchmark_compares_like_with_like_and_puts_hpnbs_ops_back(monkeypatch, capsys):
    """scripts/bench_cpu_ops.py: both sides of each op compute the same values, the ensembles are those of the
    networks that use the op, and after the run the networks use hpnb's ops again (the ELU hpnb chose)."""
    import torch
    import torch.nn.functional as F

    from hpnb.models import activations, batchnorm, simple_cnns
    from hpnb.timing import EnsembleCost

    bench = ops_script()
    g = torch.Generator().manual_seed(0)
    x = bench.OPS["batchnorm"][4](g)[:, :4, :, :8, :8]
    monkeypatch.setattr(batchnorm, "FOLD_FROM", 0)  # a small slice: fold it too, as the full tensor would be
    theirs, ours = (bench.batch_norm_alone(f)(x) for f in (F.batch_norm, batchnorm.batch_norm))
    assert "_BatchNormBackward" in graph_nodes(ours) and "MulBackward0" in graph_nodes(theirs)
    assert torch.allclose(theirs, ours, rtol=1e-4, atol=1e-5)
    monkeypatch.undo()
    assert {m[0].model.name for m in bench.ensembles_of(("vgg19", "mobilenet")).values()} == {"vgg19", "mobilenet"}
    assert all(m[0].model.options["batch_norm"] for m in bench.ensembles_of(("vgg19",)).values())
    seen = []

    def fake_measure(members, steps):  # the ops each ensemble was measured with
        seen.append((members[0].model.name, simple_cnns.elu, batchnorm.batch_norm))
        return EnsembleCost(len(members), 0.01, 1e-5)

    monkeypatch.setattr(bench, "measure", fake_measure)
    monkeypatch.setattr(bench, "op_ms", lambda op, x: (1.0, 2.0))
    monkeypatch.setattr("sys.argv", ["bench_cpu_ops.py", "--rounds", "2", "--steps", "1"])
    elu_before, batch_norm_before = simple_cnns.elu, batchnorm.batch_norm
    bench.main()
    assert simple_cnns.elu is elu_before is activations.elu and batchnorm.batch_norm is batch_norm_before
    assert {elu for name, elu, _ in seen if name == "cifar_cnn"} == {F.elu, activations.elu_from_exp}
    assert {bn for name, _, bn in seen if name != "cifar_cnn"} == {F.batch_norm, batchnorm.batch_norm}
    table = capsys.readouterr().out
    assert "| cifar_cnn (dropout=0.25, dropout_first_epoch_only=True) x26, training step | 10.0 ms | 10.0 ms" in table


def test_the_ops_benchmark_names_the_ops_it_can_time(monkeypatch):
    bench = ops_script()
    monkeypatch.setattr("sys.argv", ["bench_cpu_ops.py", "--ops", "elu,gelu"])
    with pytest.raises(SystemExit) as exit_:
        bench.main()
    assert "--ops: gelu: not an op this script times; choose from elu, batchnorm" in str(exit_.value)
