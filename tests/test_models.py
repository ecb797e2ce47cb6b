import math

import pytest
import torch
import torch.nn.functional as F

from hpnb import ConfigError, build_model, count_parameters
from hpnb.init import initialise
from hpnb.models import input_mismatch, model_context
from hpnb.models.vgg import VGG19_CFG


def vgg19_count(num_classes, batch_norm, c_in=3):
    """Standard definition: 16 3×3 convs with bias (+ BN scale and shift) and one linear classifier."""
    total = 0
    for c in (c for c in VGG19_CFG if c != "M"):
        total += c_in * c * 9 + c + (2 * c if batch_norm else 0)
        c_in = c
    return total + 512 * num_classes + num_classes


def resnet34_count(num_classes):
    conv = lambda i, o, k: i * o * k * k  # noqa: E731
    bn = lambda c: 2 * c  # noqa: E731
    total = conv(3, 64, 3) + bn(64)
    c_in = 64
    for n_blocks, c in zip((3, 4, 6, 3), (64, 128, 256, 512)):
        for j in range(n_blocks):
            total += conv(c_in, c, 3) + bn(c) + conv(c, c, 3) + bn(c)
            if c_in != c:
                total += conv(c_in, c, 1) + bn(c)
            c_in = c
    return total + 512 * num_classes + num_classes


def mobilenet_count(num_classes):
    cfg = [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
    total, c_in = 3 * 32 * 9 + 2 * 32, 32
    for c in cfg:
        total += c_in * 9 + 2 * c_in + c_in * c + 2 * c
        c_in = c
    return total + 1024 * num_classes + num_classes


@pytest.mark.parametrize("classes", [10, 50, 100])
def test_parameter_counts_match_the_standard_definitions(classes):
    assert count_parameters(build_model("vgg19", num_classes=classes)) == vgg19_count(classes, False)
    assert count_parameters(build_model("vgg19", num_classes=classes, batch_norm=True)) == vgg19_count(classes, True)
    assert count_parameters(build_model("resnet34", num_classes=classes)) == resnet34_count(classes)
    assert count_parameters(build_model("mobilenet", num_classes=classes)) == mobilenet_count(classes)


def test_published_parameter_counts_for_ten_classes():
    # The figures usually quoted for the CIFAR-10 versions of these networks.
    assert count_parameters(build_model("vgg19", num_classes=10, batch_norm=True)) == 20_040_522
    assert count_parameters(build_model("resnet34", num_classes=10)) == 21_282_122
    assert count_parameters(build_model("mobilenet", num_classes=10)) == 3_217_226


def test_chapter3_networks():
    # conv 1→20 (200) + 3380→128 (432,768) + 128→10 (1,290)
    assert count_parameters(build_model("mnist_cnn")) == 200 + 3380 * 128 + 128 + 1290
    convs = (3 * 16 * 9 + 16) + (16 * 32 * 9 + 32) + (32 * 64 * 9 + 64)
    assert count_parameters(build_model("cifar_cnn")) == convs + 1024 * 500 + 500 + 5010


def test_width_multiplier_shrinks_channels():
    model = build_model("vgg19", num_classes=10, width=0.25)
    assert model.features[0].out_channels == 16 and model.classifier.in_features == 128
    assert build_model("resnet34", width=0.125)(torch.randn(2, 3, 16, 16)).shape == (2, 10)


def test_mobilenet_sigmoid_blocks_and_probed_tensor():
    model = build_model("mobilenet", num_classes=100, sigmoid_blocks=[4, 5, 6, 7, 8, 9, 10])
    assert [i for i, block in enumerate(model.layers) if block.sigmoid] == list(range(4, 11))
    assert model.layers[8].conv1.weight.shape == (512, 1, 3, 3)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)


def test_double_softmax_floor_is_1_4612():
    model = build_model("mnist_cnn", double_softmax=True)
    probs = model(torch.randn(4, 1, 28, 28))
    assert torch.allclose(probs.sum(1), torch.ones(4))
    perfect = F.one_hot(torch.arange(4), 10).float()  # the best a softmax output can do
    assert F.cross_entropy(perfect, torch.arange(4)).item() == pytest.approx(math.log(1 + 9 / math.e), abs=1e-6)
    assert math.log(1 + 9 / math.e) == pytest.approx(1.4612, abs=1e-4)


def test_cifar_cnn_dropout_only_in_epoch_one_when_the_quirk_is_on():
    torch.manual_seed(0)
    model = build_model("cifar_cnn", dropout_first_epoch_only=True).train()
    x = torch.randn(8, 3, 32, 32)
    assert not torch.equal(model(x), model(x))  # epoch 1: dropout acts
    model.set_epoch(2)
    assert torch.equal(model(x), model.eval()(x))  # later: as in eval mode


def test_unknown_model_is_rejected():
    with pytest.raises(ConfigError, match="unknown model 'vgg16'; allowed: cifar_cnn"):
        build_model("vgg16")


@pytest.mark.parametrize("init", ["xavier_normal", "xavier_uniform"])
def test_xavier_on_plain_vgg19_sits_at_ln_classes(init):
    torch.manual_seed(0)
    model = initialise(build_model("vgg19", num_classes=50, width=0.25), init, {})
    logits = model(torch.randn(64, 3, 32, 32))
    loss = F.cross_entropy(logits, torch.randint(0, 50, (64,))).item()
    assert loss == pytest.approx(math.log(50), rel=1e-3)
    assert logits.std() < 0.01  # the signal has shrunk by ~½ in variance per conv


def test_kaiming_on_plain_vgg19_keeps_the_signal():
    torch.manual_seed(0)
    model = initialise(build_model("vgg19", num_classes=50, width=0.25), "kaiming_normal", {})
    assert model(torch.randn(64, 3, 32, 32)).std() > 0.1


@pytest.mark.parametrize("name", ["mlp", "ldlt_mlp"])
def test_mlps_read_images_as_vectors(name):
    """An MLP on 1×8×8 digits sees 64 features, the same network as on a table of 64 columns."""
    model = build_model(name, **model_context((1, 8, 8), 10), width=16)
    assert model(torch.randn(5, 1, 8, 8)).shape == (5, 10)
    first = next(model.parameters())
    assert first.shape[1] == 64
    assert input_mismatch(name, {"width": 16}, (1, 8, 8), 10) is None
    assert input_mismatch(name, {"width": 16}, (64,), 10) is None


def test_a_model_that_cannot_take_the_inputs_is_named_before_training():
    assert "image network" in input_mismatch("vgg19", {"width": 0.125}, (28,), 2)
    assert "too small" in input_mismatch("vgg19", {"width": 0.125}, (1, 8, 8), 10)  # five poolings of 8 pixels
    assert input_mismatch("vgg19", {"width": 0.125}, (3, 32, 32), 10) is None
    assert input_mismatch("mnist_cnn", {}, (1, 12, 12), 10) is None
