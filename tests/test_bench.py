from hpnb.bench import NETWORKS, config_for, hpnb_epoch, reference_epoch


def test_both_loops_train_the_same_configuration():
    cfg = config_for("mnist_cnn", "cpu")
    assert (cfg.batch_size, cfg.model.name, cfg.data.image_size) == (64, "mnist_cnn", 28)
    assert reference_epoch(cfg, workers=0) > 0 and hpnb_epoch(cfg) > 0


def test_paper_batch_sizes_and_cpu_widths():
    assert {n: v[2] for n, v in NETWORKS.items()} == {"vgg19": 128, "resnet34": 128, "mobilenet": 128,
                                                       "mnist_cnn": 64, "cifar_cnn": 20}
    assert config_for("vgg19", "cpu").model.options["width"] == 0.125
    assert config_for("resnet34", "cuda").model.options["width"] == 1.0
    assert config_for("resnet34", "cuda").data.augment is True
